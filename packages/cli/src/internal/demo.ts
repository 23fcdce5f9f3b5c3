// `ezio demo`: the whole deploy on one machine, over 127.0.0.1. A sample disk image with used
// and unused (all-zero) regions becomes an EZIO raw-image torrent; a seeder serves it with its
// own embedded tracker; a downloader finds it through the tracker, writes a target image, and
// the two images are compared byte for byte.
import * as NCrypto from "node:crypto"
import * as NFS from "node:fs"
import * as NOS from "node:os"
import * as NPath from "node:path"
import { DiskIo } from "@ezio/disk-io"
import { EmbeddedTracker, Session, Tracker } from "@ezio/peer"
import { BufferPool } from "@ezio/pool"
import { Bitfield, Check, Create, Hasher, Layout, Storage } from "@ezio/storage"
import { Metainfo, RawImage } from "@ezio/torrent"
import * as Console from "effect/Console"
import * as Effect from "effect/Effect"
import * as Either from "effect/Either"
import * as Layer from "effect/Layer"
import { formatBytes, formatRate } from "./format.js"

class DemoFailed extends Error {
  readonly _tag = "Incomplete"
}

const makeImage = (path: string, size: number) => {
  // Every 1 MiB region is used with probability 2/3, the rest stays zero (free file-system space).
  const fd = NFS.openSync(path, "w")
  try {
    NFS.ftruncateSync(fd, size)
    const region = 1024 * 1024
    let seed = 12345
    for (let at = 0; at < size; at += region) {
      seed = (seed * 1103515245 + 12345) >>> 0
      if (seed % 3 === 0) continue
      NFS.writeSync(fd, NCrypto.randomBytes(Math.min(region, size - at)), 0, Math.min(region, size - at), at)
    }
  } finally {
    NFS.closeSync(fd)
  }
}

export const runDemo = (options: { readonly size: number; readonly keep: boolean }) =>
  Effect.gen(function* () {
    const dir = NFS.mkdtempSync(NPath.join(NOS.tmpdir(), "ezio-demo-"))
    yield* Effect.addFinalizer(() =>
      Effect.sync(() =>
        options.keep ? console.log(`files kept in ${dir}`) : NFS.rmSync(dir, { recursive: true, force: true })
      )
    )
    const source = NPath.join(dir, "source.img")
    const target = NPath.join(dir, "target.img")
    makeImage(source, options.size)
    yield* Console.log(`1. made a ${formatBytes(options.size)} sample disk image: ${source}`)

    const meta = yield* Create.fromRawImage(source, { name: "sda1", creationDate: null })
    const torrentPath = NPath.join(dir, "sda1.torrent")
    NFS.writeFileSync(torrentPath, Metainfo.encode(meta))
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
    const started = Date.now()
    yield* download.announce(trackers, { tiers: [[tracker.url]], minInterval: "1 second" })
    yield* Console.log(`4. downloading into ${target} through the tracker...`)
    yield* download.complete.pipe(
      Effect.timeoutFail({
        duration: "300 seconds",
        onTimeout: () => new DemoFailed("the download did not finish within 300 s")
      })
    )
    const disk = yield* DiskIo.DiskIo
    yield* disk.sync(download.disk)
    const seconds = (Date.now() - started) / 1000
    const pool = yield* BufferPool.BufferPool
    const stats = pool.unsafeStats()
    yield* Console.log(
      `5. downloaded ${formatBytes(meta.totalLength)} in ${seconds.toFixed(2)} s (${formatRate(meta.totalLength / seconds)}); pool peak ${formatBytes(stats.peak * stats.blockSize)} of ${formatBytes(stats.capacityBlocks * stats.blockSize)}; ${download.unsafeStatus().hashFailures} hash failures`
    )

    const a = NFS.readFileSync(source)
    const b = NFS.readFileSync(target)
    if (a.length !== b.length || Buffer.compare(a, b) !== 0)
      return yield* Effect.fail(new DemoFailed("the target image differs from the source"))
    yield* Console.log("6. the target image is byte-identical to the source. Done.")
  }).pipe(
    Effect.scoped,
    Effect.provide(
      DiskIo.layer({ name: "demo" }).pipe(
        Layer.provideMerge(Hasher.layer()),
        Layer.provideMerge(BufferPool.layer({ capacity: 64 * 1024 * 1024, name: "demo" }))
      )
    )
  )
