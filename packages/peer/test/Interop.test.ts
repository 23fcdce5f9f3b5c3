/**
 * Our seeder against real clients on 127.0.0.1: python3-libtorrent by direct peer, aria2 through
 * our embedded tracker and through Debian's opentracker; a multi-file and an EZIO raw-image
 * torrent; hostile peers while a well-behaved client downloads; and our downloader fed by a
 * libtorrent seeder.
 */
import * as NCrypto from "node:crypto"
import * as NFS from "node:fs"
import * as Net from "node:net"
import * as NOS from "node:os"
import * as NPath from "node:path"
import { assert, describe, it } from "@effect/vitest"
import { DiskIo } from "@ezio/disk-io"
import { EmbeddedTracker, Session, Tracker, Wire } from "@ezio/peer"
import { BufferPool } from "@ezio/pool"
import { Bitfield, Hasher, Layout, Storage } from "@ezio/storage"
import { Bencode, Create, Metainfo, RawImage } from "@ezio/torrent"
import { Effect, Either, Layer, Schedule } from "effect"
import { aria2Download, hasAria2, hasLibtorrent, libtorrentDownload, libtorrentSeed } from "./support/clients.js"
import { hasOpentracker, opentracker } from "./support/opentracker.js"

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
        const summary = yield* libtorrentDownload({ torrent, saveDir: out, peers: [session.port], timeoutMs: 60_000 })
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
        yield* tracker.swarm(meta.infoHash).pipe(
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
})
