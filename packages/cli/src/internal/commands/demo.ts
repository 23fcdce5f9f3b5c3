// `ezio demo`: the whole deploy on one machine, over 127.0.0.1. A sample disk image with used
// and unused (all-zero) regions becomes an EZIO raw-image torrent; a seeder serves it with its
// own embedded tracker; a downloader finds it through the tracker, writes a target image, and
// the two images are compared byte for byte.
import * as NCrypto from "node:crypto"
import * as NPath from "node:path"
import * as Command from "@effect/cli/Command"
import * as Options from "@effect/cli/Options"
import * as FileSystem from "@effect/platform/FileSystem"
import { DiskIo } from "@ezio/disk-io"
import { EmbeddedTracker, Session, Tracker } from "@ezio/peer"
import { BufferPool } from "@ezio/pool"
import { Bitfield, Check, Create, Layout, Storage } from "@ezio/storage"
import { Metainfo, RawImage } from "@ezio/torrent"
import * as Console from "effect/Console"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Either from "effect/Either"
import * as Layer from "effect/Layer"
import { engineWith, readFile, writeFile } from "../common.js"
import { DemoFailed, FileError } from "../errors.js"
import { formatBytes, formatRate, parseSize } from "../format.js"

// Every 1 MiB region is used with probability 2/3, the rest stays zero (free file-system space).
const makeImage = (path: string, size: number) =>
  Effect.gen(function* () {
    const fs = yield* FileSystem.FileSystem
    const file = yield* fs.open(path, { flag: "w" })
    yield* file.truncate(size)
    const region = 1024 * 1024
    let seed = 12345
    for (let at = 0; at < size; at += region) {
      seed = (seed * 1103515245 + 12345) >>> 0
      if (seed % 3 === 0) continue
      yield* file.seek(at, "start")
      yield* file.writeAll(NCrypto.randomBytes(Math.min(region, size - at)))
    }
  }).pipe(
    Effect.scoped,
    Effect.mapError((cause) => new FileError({ path, operation: "write", cause }))
  )

/** A scratch directory, removed at the end unless `keep`. */
const workDirectory = (keep: boolean) =>
  Effect.gen(function* () {
    const fs = yield* FileSystem.FileSystem
    const dir = yield* fs
      .makeTempDirectory({ prefix: "ezio-demo-" })
      .pipe(Effect.mapError((cause) => new FileError({ path: "ezio-demo-*", operation: "create", cause })))
    yield* Effect.addFinalizer(() =>
      keep
        ? Console.log(`files kept in ${dir}`)
        : fs
            .remove(dir, { recursive: true })
            .pipe(
              Effect.catchAll((cause) =>
                Console.error(`warning: ${new FileError({ path: dir, operation: "remove", cause }).message}`)
              )
            )
    )
    return dir
  })

const runDemo = (options: { readonly size: number; readonly keep: boolean }) =>
  Effect.gen(function* () {
    const dir = yield* workDirectory(options.keep)
    const source = NPath.join(dir, "source.img")
    const target = NPath.join(dir, "target.img")
    yield* makeImage(source, options.size)
    yield* Console.log(`1. made a ${formatBytes(options.size)} sample disk image: ${source}`)

    const meta = yield* Create.fromRawImage(source, { name: "sda1", creationDate: null })
    const torrentPath = NPath.join(dir, "sda1.torrent")
    yield* writeFile(torrentPath, Metainfo.encode(meta))
    const raw = Either.getOrThrow(RawImage.fromMetainfo(meta))
    yield* Console.log(
      `2. created ${torrentPath}: EZIO raw-image format, ${raw.extents.length} used extents, ${formatBytes(meta.totalLength)} of ${formatBytes(options.size)} to send (zero space skipped), info-hash ${meta.infoHashHex}`
    )

    const layout = Either.getOrThrow(Layout.fromMetainfo(meta, { raw: true }))
    const tracker = yield* EmbeddedTracker.make({ host: "127.0.0.1", port: 0 })
    const trackers = yield* Tracker.make()

    const seedStorage = yield* Storage.makeRaw({ layout, path: source, mode: "read" })
    const have = yield* Check.check(seedStorage, { pieceHashes: meta.pieces })
    const seeder = yield* Session.make({ host: "127.0.0.1", port: 0 })
    const seed = yield* seeder.add({ metainfo: meta, storage: seedStorage, have })
    yield* seed.announce(trackers, { tiers: [[tracker.url]], minInterval: "1 second" })
    yield* Console.log(
      `3. seeding on 127.0.0.1:${seeder.port} (${Bitfield.count(have)}/${meta.pieceCount} pieces checked), embedded tracker ${tracker.url}`
    )

    const targetStorage = yield* Storage.makeRaw({ layout, path: target, mode: "readwrite", grow: true })
    const downloader = yield* Session.make({ host: "127.0.0.1", port: 0 })
    const download = yield* downloader.add({ metainfo: meta, storage: targetStorage })
    const [elapsed] = yield* Effect.timed(
      Effect.gen(function* () {
        yield* download.announce(trackers, { tiers: [[tracker.url]], minInterval: "1 second" })
        yield* Console.log(`4. downloading into ${target} through the tracker...`)
        yield* download.complete.pipe(
          Effect.timeoutFail({
            duration: "300 seconds",
            onTimeout: () => new DemoFailed({ detail: "the download did not finish within 300 s" })
          })
        )
        const disk = yield* DiskIo.DiskIo
        yield* disk.sync(download.disk)
      })
    )
    const seconds = Duration.toSeconds(elapsed)
    const pool = yield* BufferPool.BufferPool
    const stats = pool.unsafeStats()
    yield* Console.log(
      `5. downloaded ${formatBytes(meta.totalLength)} in ${seconds.toFixed(2)} s (${formatRate(meta.totalLength / seconds)}); pool peak ${formatBytes(stats.peak * stats.blockSize)} of ${formatBytes(stats.capacityBlocks * stats.blockSize)}; ${download.unsafeStatus().hashFailures} hash failures`
    )

    const a = yield* readFile(source)
    const b = yield* readFile(target)
    if (a.length !== b.length || Buffer.compare(a, b) !== 0)
      return yield* new DemoFailed({ detail: "the target image differs from the source" })
    yield* Console.log("6. the target image is byte-identical to the source. Done.")
  }).pipe(
    Effect.scoped,
    Effect.provide(
      // A fixed, valid pool: its options cannot fail.
      engineWith("demo", BufferPool.layer({ capacity: 64 * 1024 * 1024, name: "demo" }).pipe(Layer.orDie))
    )
  )

export const demo = Command.make(
  "demo",
  {
    size: Options.text("size").pipe(
      Options.withDefault("64MiB"),
      Options.withDescription("Size of the sample image")
    ),
    keep: Options.boolean("keep").pipe(Options.withDescription("Keep the demo's files"))
  },
  (args) => Effect.flatMap(parseSize(args.size, "--size"), (size) => runDemo({ size, keep: args.keep }))
).pipe(
  Command.withDescription(
    "Make a sample disk image, create its raw-image torrent, seed it with an embedded tracker and download it once over 127.0.0.1"
  )
)
