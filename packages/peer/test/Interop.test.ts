/**
 * Our seeder against real clients on 127.0.0.1: python3-libtorrent by direct peer, aria2 through
 * our embedded tracker and through Debian's opentracker; a multi-file and an EZIO raw-image
 * torrent; hostile peers while a well-behaved client (ours, and libtorrent if installed) downloads; and our downloader fed by a
 * libtorrent seeder.
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
import { Bencode, Metainfo, RawImage } from "@ezio/torrent"
import { Effect, Either, Layer, Schedule } from "effect"
import {
  aria2Download,
  hasAria2,
  hasLibtorrent,
  libtorrentDownload,
  libtorrentSeed
} from "@ezio/test-support/clients"
import { hasOpentracker, opentracker } from "@ezio/test-support/opentracker"
import { hostilePeers } from "./hostilePeers.js"

const POOL = 8 * 1024 * 1024

const env = DiskIo.layer().pipe(
  Layer.provideMerge(Hasher.layer({ threads: 2 })),
  Layer.provideMerge(BufferPool.layer({ capacity: POOL }))
)

const tempDir = Effect.acquireRelease(
  Effect.sync(() => NFS.mkdtempSync(NPath.join(NOS.tmpdir(), "ezio-interop-"))),
  (dir) => Effect.sync(() => NFS.rmSync(dir, { recursive: true, force: true }))
)

const full = (meta: Metainfo.Metainfo) => {
  const have = Bitfield.make(meta.pieceCount)
  for (let i = 0; i < meta.pieceCount; i++) Bitfield.set(have, i)
  return have
}

/** A single-file torrent of `size` random bytes in `dir/src`, written to `dir/name.torrent`. */
const singleFile = (dir: string, size: number, trackers?: ReadonlyArray<ReadonlyArray<string>>) =>
  Effect.gen(function* () {
    NFS.mkdirSync(NPath.join(dir, "src"), { recursive: true })
    const file = NPath.join(dir, "src", "disk.img")
    const data = NCrypto.randomBytes(size)
    NFS.writeFileSync(file, data)
    const meta = yield* Create.fromPath(file, {
      pieceLength: 256 * 1024,
      ...(trackers !== undefined ? { trackers } : {})
    })
    const torrent = NPath.join(dir, "disk.torrent")
    NFS.writeFileSync(torrent, Metainfo.encode(meta))
    return { file, data, meta, torrent }
  })

/** Our seeder for `meta` with its data under `root` (directory storage). */
const seed = (meta: Metainfo.Metainfo, root: string, options: Partial<Session.SwarmOptions> = {}) =>
  Effect.gen(function* () {
    const layout = Either.getOrThrow(Layout.fromMetainfo(meta))
    const storage = yield* Storage.makeDirectory({ layout, root, mode: "read" })
    const session = yield* Session.make({ host: "127.0.0.1", port: 0 })
    const swarm = yield* session.add({ metainfo: meta, storage, have: full(meta), ...options })
    return { session, swarm }
  })

const sameBytes = (a: string, b: string) => Buffer.compare(NFS.readFileSync(a), NFS.readFileSync(b)) === 0

const poolIsEmpty = Effect.flatMap(BufferPool.BufferPool, (pool) =>
  Effect.sync(() => assert.strictEqual(pool.unsafeStats().inUse, 0, "blocks still out of the pool"))
)

/** The pool's blocks in use, sampled every 10 ms in a fiber of the scope. */
const samplePeak = (pool: BufferPool.BufferPoolService) =>
  Effect.gen(function* () {
    let peak = 0
    yield* Effect.forkScoped(
      Effect.repeat(
        Effect.sync(() => (peak = Math.max(peak, pool.unsafeStats().inUse))),
        Schedule.spaced("10 millis")
      )
    )
    return { peak: () => peak }
  })

describe("interop with real clients", () => {
  it.live.skipIf(!hasLibtorrent)(
    "python3-libtorrent downloads from our seeder by direct peer, byte-identical, no hash failure",
    () =>
      Effect.gen(function* () {
        const dir = yield* tempDir
        const { data, meta, torrent } = yield* singleFile(dir, 24 * 1024 * 1024 + 12345)
        const { session } = yield* seed(meta, NPath.join(dir, "src"))
        const out = NPath.join(dir, "out")
        NFS.mkdirSync(out)
        const summary = yield* libtorrentDownload({
          torrent,
          saveDir: out,
          peers: [session.port],
          timeoutMs: 60_000
        })
        assert.isTrue(summary.done, JSON.stringify(summary))
        assert.strictEqual(summary.hash_failures, 0)
        assert.strictEqual(Buffer.compare(NFS.readFileSync(NPath.join(out, "disk.img")), data), 0)
      }).pipe(Effect.scoped, Effect.zipRight(poolIsEmpty), Effect.provide(env)),
    90_000
  )

  it.live.skipIf(!hasAria2)(
    "aria2 downloads through our embedded tracker, byte-identical",
    () =>
      Effect.gen(function* () {
        const dir = yield* tempDir
        const tracker = yield* EmbeddedTracker.make({ host: "127.0.0.1", port: 0, interval: 5 })
        const { file, meta, torrent } = yield* singleFile(dir, 12 * 1024 * 1024, [[tracker.url]])
        const { swarm } = yield* seed(meta, NPath.join(dir, "src"))
        const client = yield* Tracker.make()
        yield* swarm.announce(client, { tiers: [[tracker.url]] })
        // The seeder is in the tracker's swarm before aria2 asks.
        yield* tracker
          .swarm(meta.infoHash)
          .pipe(
            Effect.repeat({ until: (peers) => peers.length > 0, schedule: Schedule.spaced("50 millis") }),
            Effect.timeout("10 seconds")
          )
        const out = NPath.join(dir, "out")
        NFS.mkdirSync(out)
        const result = yield* aria2Download({ torrent, dir: out, timeoutMs: 60_000 })
        assert.isTrue(result.done, result.stderr)
        assert.isTrue(sameBytes(file, NPath.join(out, "disk.img")))
      }).pipe(Effect.scoped, Effect.zipRight(poolIsEmpty), Effect.provide(env)),
    90_000
  )

  it.live.skipIf(!hasAria2 || !hasOpentracker)(
    "aria2 downloads through Debian's opentracker (whitelisted), byte-identical",
    () =>
      Effect.gen(function* () {
        const dir = yield* tempDir
        NFS.mkdirSync(NPath.join(dir, "src"))
        const file = NPath.join(dir, "src", "disk.img")
        NFS.writeFileSync(file, NCrypto.randomBytes(8 * 1024 * 1024))
        // The announce URL lives outside the info dictionary: the info-hash is known before the
        // tracker's port, and goes into its whitelist.
        const bare = yield* Create.fromPath(file, { pieceLength: 256 * 1024 })
        const { port } = yield* opentracker([bare.infoHash])
        const url = `http://127.0.0.1:${port}/announce`
        const meta = Either.getOrThrow(
          Metainfo.decode(Bencode.encode({ ...bare.torrent, announce: Bencode.text(url) }))
        )
        assert.strictEqual(meta.infoHashHex, bare.infoHashHex)
        const torrent = NPath.join(dir, "disk.torrent")
        NFS.writeFileSync(torrent, Metainfo.encode(meta))
        const { swarm } = yield* seed(meta, NPath.join(dir, "src"))
        const client = yield* Tracker.make({ httpTimeout: "2 seconds" })
        // opentracker may take a moment to listen: announce until it answers.
        yield* client
          .announce(url, {
            infoHash: meta.infoHash,
            peerId: Session.makePeerId(),
            port: 1,
            uploaded: 0,
            downloaded: 0,
            left: 1,
            event: "stopped"
          })
          .pipe(Effect.retry({ schedule: Schedule.spaced("100 millis"), times: 50 }))
        yield* swarm.announce(client, { tiers: [[url]] })
        yield* Effect.sleep("300 millis")
        const out = NPath.join(dir, "out")
        NFS.mkdirSync(out)
        const result = yield* aria2Download({ torrent, dir: out, timeoutMs: 60_000 })
        assert.isTrue(result.done, result.stderr)
        assert.isTrue(sameBytes(file, NPath.join(out, "disk.img")))
      }).pipe(Effect.scoped, Effect.zipRight(poolIsEmpty), Effect.provide(env)),
    90_000
  )

  it.live.skipIf(!hasLibtorrent)(
    "a multi-file torrent and an EZIO raw-image torrent both seed correctly to libtorrent",
    () =>
      Effect.gen(function* () {
        const dir = yield* tempDir
        // Multi-file: odd sizes, an empty file, files smaller than a block, pieces spanning files.
        const set = NPath.join(dir, "src", "set")
        NFS.mkdirSync(NPath.join(set, "sub"), { recursive: true })
        const sizes: Array<[string, number]> = [
          ["a.bin", 3 * 1024 * 1024 + 7],
          ["empty", 0],
          ["sub/b.bin", 100],
          ["sub/c.bin", 2 * 1024 * 1024 + 333]
        ]
        for (const [name, size] of sizes) NFS.writeFileSync(NPath.join(set, name), NCrypto.randomBytes(size))
        const multi = yield* Create.fromPath(set, { pieceLength: 64 * 1024 })
        const multiTorrent = NPath.join(dir, "set.torrent")
        NFS.writeFileSync(multiTorrent, Metainfo.encode(multi))
        const a = yield* seed(multi, NPath.join(dir, "src"))
        const outMulti = NPath.join(dir, "out-multi")
        NFS.mkdirSync(outMulti)
        const m = yield* libtorrentDownload({
          torrent: multiTorrent,
          saveDir: outMulti,
          peers: [a.session.port],
          timeoutMs: 60_000
        })
        assert.isTrue(m.done, JSON.stringify(m))
        assert.strictEqual(m.hash_failures, 0)
        for (const [name, size] of sizes) {
          if (size === 0) continue
          assert.isTrue(sameBytes(NPath.join(set, name), NPath.join(outMulti, "set", name)), name)
        }

        // Raw image: used regions between zero gaps, served from the image at their disk offsets.
        const image = NPath.join(dir, "sda1.img")
        const disk = Buffer.alloc(6 * 1024 * 1024)
        NCrypto.randomBytes(300_000).copy(disk, 4096)
        NCrypto.randomBytes(1_000_000).copy(disk, 3 * 1024 * 1024)
        NFS.writeFileSync(image, disk)
        const raw = yield* Create.fromRawImage(image, { granularity: 64 * 1024, pieceLength: 32 * 1024 })
        const rawTorrent = NPath.join(dir, "sda1.torrent")
        NFS.writeFileSync(rawTorrent, Metainfo.encode(raw))
        const layout = Either.getOrThrow(Layout.fromMetainfo(raw, { raw: true }))
        const storage = yield* Storage.makeRaw({ layout, path: image, mode: "read" })
        const session = yield* Session.make({ host: "127.0.0.1", port: 0 })
        yield* session.add({ metainfo: raw, storage, have: full(raw) })
        const outRaw = NPath.join(dir, "out-raw")
        NFS.mkdirSync(outRaw)
        const r = yield* libtorrentDownload({
          torrent: rawTorrent,
          saveDir: outRaw,
          peers: [session.port],
          timeoutMs: 60_000
        })
        assert.isTrue(r.done, JSON.stringify(r))
        assert.strictEqual(r.hash_failures, 0)
        // libtorrent stores each extent as a file named by its hex offset: it must hold the image's bytes there.
        const extents = Either.getOrThrow(RawImage.fromMetainfo(raw)).extents
        assert.isAbove(extents.length, 1)
        for (const [i, extent] of extents.entries()) {
          const got = NFS.readFileSync(NPath.join(outRaw, raw.name, raw.files[i]!.path[0]!))
          assert.strictEqual(
            Buffer.compare(got, disk.subarray(extent.diskOffset, extent.diskOffset + extent.length)),
            0
          )
        }
      }).pipe(Effect.scoped, Effect.zipRight(poolIsEmpty), Effect.provide(env)),
    120_000
  )

  it.live(
    "hostile peers are dropped or throttled, memory stays bounded, and our downloader still finishes",
    () =>
      Effect.gen(function* () {
        const dir = yield* tempDir
        const { data, meta } = yield* singleFile(dir, 16 * 1024 * 1024)
        const { session, swarm } = yield* seed(meta, NPath.join(dir, "src"), { requestQueue: 50 })
        const pool = yield* BufferPool.BufferPool
        const hardLimit = pool.unsafeStats().hardLimitBlocks
        const hostile = hostilePeers(session.port, meta)

        // 1. A wrong info-hash: hung up on.
        const wrong = yield* hostile.connect()
        wrong.write(hostile.handshake(new Uint8Array(20).fill(7)))
        assert.isTrue(yield* hostile.closed(wrong), "wrong info-hash not dropped")

        // 2. An oversized length prefix after a good handshake: hung up on.
        const oversized = yield* hostile.connect()
        oversized.on("data", () => {})
        oversized.write(hostile.handshake(meta.infoHash))
        oversized.write(Buffer.from([0x7f, 0xff, 0xff, 0xff, 7]))
        assert.isTrue(yield* hostile.closed(oversized), "oversized message not dropped")

        // 3. Requests past the end of a piece: rejected, and after too many, hung up on.
        const pastEnd = yield* hostile.connect()
        pastEnd.on("data", () => {})
        pastEnd.write(hostile.handshake(meta.infoHash))
        pastEnd.write(
          hostile.interestedAndRequests(
            Array.from({ length: 400 }, () => [0, 256 * 1024 - 100, 16384] as [number, number, number])
          )
        )
        assert.isTrue(yield* hostile.closed(pastEnd), "a peer sending invalid requests was not dropped")

        // 4. Peers that flood requests and never read, while our own downloader fetches everything.
        const flooders = yield* hostile.flood(3)
        const sampler = yield* samplePeak(pool)
        const layout = Either.getOrThrow(Layout.fromMetainfo(meta))
        const root = NPath.join(dir, "out")
        const downloader = yield* Session.make({ host: "127.0.0.1", port: 0, listen: false })
        const download = yield* downloader.add({
          metainfo: meta,
          storage: yield* Storage.makeDirectory({ layout, root })
        })
        yield* download.connect("127.0.0.1", session.port)
        yield* download.complete.pipe(Effect.timeout("60 seconds"))
        yield* (yield* DiskIo.DiskIo).flush(download.disk)
        assert.strictEqual(Buffer.compare(NFS.readFileSync(NPath.join(root, "disk.img")), data), 0)
        assert.isAtMost(sampler.peak(), hardLimit)
        assert.isAtMost(pool.unsafeStats().peak, hardLimit)
        for (const s of flooders) s.destroy()
        yield* Effect.sleep("200 millis")
        assert.isAtLeast(swarm.unsafeStatus().uploaded, data.length)
      }).pipe(Effect.scoped, Effect.zipRight(poolIsEmpty), Effect.provide(env)),
    120_000
  )

  it.live.skipIf(!hasLibtorrent)(
    "while peers flood requests and never read, libtorrent still finishes and memory stays bounded",
    () =>
      Effect.gen(function* () {
        const dir = yield* tempDir
        const { data, meta, torrent } = yield* singleFile(dir, 16 * 1024 * 1024)
        const { session, swarm } = yield* seed(meta, NPath.join(dir, "src"), { requestQueue: 50 })
        const pool = yield* BufferPool.BufferPool
        const hardLimit = pool.unsafeStats().hardLimitBlocks
        // Their queues are capped and the blocks they can pin are bounded by their send buffers;
        // the pool never passes its hard limit.
        // Flooders past the queue depth are dropped at once; peers within it that never read stay.
        const hostile = hostilePeers(session.port, meta)
        const flooders = [...(yield* hostile.flood(3)), ...(yield* hostile.neverRead(3, 50)).sockets]
        const sampler = yield* samplePeak(pool)
        const out = NPath.join(dir, "out")
        NFS.mkdirSync(out)
        const summary = yield* libtorrentDownload({
          torrent,
          saveDir: out,
          peers: [session.port],
          timeoutMs: 60_000
        })
        assert.isTrue(summary.done, JSON.stringify(summary))
        assert.strictEqual(Buffer.compare(NFS.readFileSync(NPath.join(out, "disk.img")), data), 0)
        assert.isAtMost(sampler.peak(), hardLimit)
        assert.isAtMost(pool.unsafeStats().peak, hardLimit)
        for (const s of flooders) s.destroy()
        yield* Effect.sleep("200 millis")
        assert.isAtLeast(swarm.unsafeStatus().uploaded, data.length)
      }).pipe(Effect.scoped, Effect.zipRight(poolIsEmpty), Effect.provide(env)),
    120_000
  )

  it.live.skipIf(!hasLibtorrent)(
    "our downloader fetches from a libtorrent seeder and verifies every piece",
    () =>
      Effect.gen(function* () {
        const dir = yield* tempDir
        const { data, meta, torrent } = yield* singleFile(dir, 16 * 1024 * 1024 + 999)
        const seeder = yield* libtorrentSeed({ torrent, saveDir: NPath.join(dir, "src"), noTrackers: true })
        const layout = Either.getOrThrow(Layout.fromMetainfo(meta))
        const root = NPath.join(dir, "out")
        const storage = yield* Storage.makeDirectory({ layout, root })
        const session = yield* Session.make({ host: "127.0.0.1", port: 0 })
        const swarm = yield* session.add({ metainfo: meta, storage })
        yield* swarm.connect("127.0.0.1", seeder.port)
        yield* swarm.complete.pipe(Effect.timeout("60 seconds"))
        const disk = yield* DiskIo.DiskIo
        yield* disk.flush(swarm.disk)
        assert.strictEqual(Buffer.compare(NFS.readFileSync(NPath.join(root, "disk.img")), data), 0)
        assert.strictEqual(swarm.unsafeStatus().hashFailures, 0)
      }).pipe(Effect.scoped, Effect.zipRight(poolIsEmpty), Effect.provide(env)),
    90_000
  )
})
