/**
 * Magnet links (BEP 9) against real clients on 127.0.0.1: our magnet download from a libtorrent
 * seeder, and libtorrent and aria2 starting from a magnet link against our seeder.
 */
import * as NCrypto from "node:crypto"
import * as NFS from "node:fs"
import * as NOS from "node:os"
import * as NPath from "node:path"
import { assert, describe, it } from "@effect/vitest"
import { DiskIo } from "@ezio/disk-io"
import { EmbeddedTracker, Session, Tracker } from "@ezio/peer"
import { BufferPool } from "@ezio/pool"
import { Bitfield, Create, Hasher, Layout, Storage } from "@ezio/storage"
import { Magnet, Metainfo } from "@ezio/torrent"
import { Effect, Either, Layer, Schedule } from "effect"
import {
  aria2Download,
  hasAria2,
  hasLibtorrent,
  libtorrentDownload,
  libtorrentSeed
} from "@ezio/test-support/clients"

const env = DiskIo.layer().pipe(
  Layer.provideMerge(Hasher.layer({ threads: 2 })),
  Layer.provideMerge(BufferPool.layer({ capacity: 16 * 1024 * 1024 }))
)

const tempDir = Effect.acquireRelease(
  Effect.sync(() => NFS.mkdtempSync(NPath.join(NOS.tmpdir(), "ezio-magnet-"))),
  (dir) => Effect.sync(() => NFS.rmSync(dir, { recursive: true, force: true }))
)

/** A single-file torrent of random bytes in `dir/src/disk.img`; 16 KiB pieces, so the metadata spans pieces. */
const singleFile = (dir: string, size: number) =>
  Effect.gen(function* () {
    NFS.mkdirSync(NPath.join(dir, "src"), { recursive: true })
    const file = NPath.join(dir, "src", "disk.img")
    const data = NCrypto.randomBytes(size)
    NFS.writeFileSync(file, data)
    const meta = yield* Create.fromPath(file, { pieceLength: 16 * 1024 })
    const torrent = NPath.join(dir, "disk.torrent")
    NFS.writeFileSync(torrent, Metainfo.encode(meta))
    return { file, data, meta, torrent }
  })

const seed = (meta: Metainfo.Metainfo, root: string) =>
  Effect.gen(function* () {
    const layout = Either.getOrThrow(Layout.fromMetainfo(meta))
    const storage = yield* Storage.makeDirectory({ layout, root, mode: "read" })
    const session = yield* Session.make({ host: "127.0.0.1", port: 0 })
    const have = Bitfield.make(meta.pieceCount)
    Bitfield.setAll(have)
    const swarm = yield* session.add({ metainfo: meta, storage, have })
    return { session, swarm }
  })

const link = (
  meta: Metainfo.Metainfo,
  options: { peers?: ReadonlyArray<string>; trackers?: ReadonlyArray<string> }
) => Magnet.format({ infoHash: meta.infoHash, trackers: options.trackers ?? [], peers: options.peers ?? [] })

describe("magnet links with real clients", () => {
  it.live.skipIf(!hasLibtorrent)(
    "our magnet download fetches the metadata from a libtorrent seeder, byte-identical",
    () =>
      Effect.gen(function* () {
        const dir = yield* tempDir
        const { data, meta, torrent } = yield* singleFile(dir, 16 * 1024 * 1024 + 4321)
        assert.isAbove(meta.infoBytes.length, 16 * 1024)
        const seeder = yield* libtorrentSeed({ torrent, saveDir: NPath.join(dir, "src"), noTrackers: true })
        const session = yield* Session.make({ host: "127.0.0.1", port: 0 })
        const magnet = Either.getOrThrow(Magnet.parse(link(meta, { peers: [`127.0.0.1:${seeder.port}`] })))
        const out = NPath.join(dir, "out")
        NFS.mkdirSync(out)
        const swarm = yield* session
          .addMagnet({
            magnet,
            storageFor: (metainfo) =>
              Effect.map(
                Storage.makeDirectory({
                  layout: Either.getOrThrow(Layout.fromMetainfo(metainfo)),
                  root: out,
                  mode: "readwrite"
                }),
                (storage) => ({ storage })
              )
          })
          .pipe(Effect.timeout("60 seconds"))
        assert.strictEqual(swarm.metainfo.infoHashHex, meta.infoHashHex)
        yield* swarm.complete.pipe(Effect.timeout("90 seconds"))
        yield* DiskIo.DiskIo.pipe(Effect.flatMap((disk) => disk.sync(swarm.disk)))
        assert.strictEqual(swarm.unsafeStatus().hashFailures, 0)
        assert.strictEqual(Buffer.compare(NFS.readFileSync(NPath.join(out, "disk.img")), data), 0)
      }).pipe(Effect.scoped, Effect.provide(env)),
    180_000
  )

  it.live.skipIf(!hasLibtorrent)(
    "python3-libtorrent starts from a magnet link (x.pe) and gets the metadata and data from our seeder",
    () =>
      Effect.gen(function* () {
        const dir = yield* tempDir
        const { data, meta } = yield* singleFile(dir, 6 * 1024 * 1024 + 99)
        const { session } = yield* seed(meta, NPath.join(dir, "src"))
        const out = NPath.join(dir, "out")
        NFS.mkdirSync(out)
        const summary = yield* libtorrentDownload({
          torrent: link(meta, { peers: [`127.0.0.1:${session.port}`] }),
          saveDir: out,
          peers: [session.port],
          timeoutMs: 90_000
        })
        assert.isTrue(summary.done, JSON.stringify(summary))
        assert.strictEqual(summary.hash_failures, 0)
        assert.strictEqual(Buffer.compare(NFS.readFileSync(NPath.join(out, "disk.img")), data), 0)
      }).pipe(Effect.scoped, Effect.provide(env)),
    150_000
  )

  it.live.skipIf(!hasAria2)(
    "aria2 starts from a magnet link through our embedded tracker and gets the metadata and data from our seeder",
    () =>
      Effect.gen(function* () {
        const dir = yield* tempDir
        const tracker = yield* EmbeddedTracker.make({ host: "127.0.0.1", port: 0, interval: 5 })
        const { file, meta } = yield* singleFile(dir, 6 * 1024 * 1024)
        const { swarm } = yield* seed(meta, NPath.join(dir, "src"))
        const client = yield* Tracker.make()
        yield* swarm.announce(client, { tiers: [[tracker.url]] })
        yield* tracker
          .swarm(meta.infoHash)
          .pipe(
            Effect.repeat({ until: (peers) => peers.length > 0, schedule: Schedule.spaced("50 millis") }),
            Effect.timeout("10 seconds")
          )
        const out = NPath.join(dir, "out")
        NFS.mkdirSync(out)
        const result = yield* aria2Download({
          torrent: link(meta, { trackers: [tracker.url] }),
          dir: out,
          timeoutMs: 90_000,
          extraArgs: ["--bt-metadata-only=false"]
        })
        assert.isTrue(result.done, `${result.stderr}\n${result.log}`)
        assert.strictEqual(
          Buffer.compare(NFS.readFileSync(NPath.join(out, "disk.img")), NFS.readFileSync(file)),
          0
        )
      }).pipe(Effect.scoped, Effect.provide(env)),
    150_000
  )
})
