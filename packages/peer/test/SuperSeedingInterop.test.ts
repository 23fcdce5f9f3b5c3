/**
 * Super-seeding (BEP 16) against real clients on 127.0.0.1: our seeder, in initial seeding, with
 * python3-libtorrent downloaders at default settings (three that know each other, and one alone)
 * and aria2 downloaders that meet through our embedded tracker. Every copy must be byte-identical,
 * and counted on the seeder's side, no piece may leave it twice before every piece has left once.
 */
import * as NFS from "node:fs"
import * as NPath from "node:path"
import { assert, describe, it } from "@effect/vitest"
import { DiskIo } from "@ezio/disk-io"
import { EmbeddedTracker, Session, Tracker } from "@ezio/peer"
import { BufferPool } from "@ezio/pool"
import { Bitfield, Hasher, Layout, Storage } from "@ezio/storage"
import { Metainfo } from "@ezio/torrent"
import { Effect, Either, Fiber, Layer, Schedule } from "effect"
import {
  aria2Download,
  freePort,
  hasAria2,
  hasLibtorrent,
  hasTransmission,
  libtorrentDownload,
  transmissionDownload
} from "@ezio/test-support/clients"
import { tempDir } from "@ezio/test-support/data"
import { listening, makeTorrent, random } from "./torrentSupport.js"

const env = DiskIo.layer().pipe(
  Layer.provideMerge(Hasher.layer({ threads: 2 })),
  Layer.provideMerge(BufferPool.layer({ capacity: 8 * 1024 * 1024 }))
)

const SIZE = 3 * 1024 * 1024 + 777
const PIECE = 32 * 1024

/** Our seeder of `data` on 127.0.0.1 (initial seeding on, as by default), its .torrent in `dir`. */
const seeder = (
  dir: string,
  data: Uint8Array,
  trackers?: ReadonlyArray<ReadonlyArray<string>>,
  options: Partial<Session.SwarmOptions> = {}
) =>
  Effect.gen(function* () {
    const meta = makeTorrent(data, PIECE)
    const withTrackers =
      trackers === undefined
        ? meta
        : Either.getOrThrow(
            Metainfo.make({
              name: meta.name,
              pieceLength: PIECE,
              pieces: meta.pieces,
              files: [{ path: [meta.name], length: data.length }],
              single: true,
              trackers
            })
          )
    const torrent = NPath.join(dir, "disk.torrent")
    NFS.writeFileSync(torrent, Metainfo.encode(withTrackers))
    const have = Bitfield.make(meta.pieceCount)
    Bitfield.setAll(have)
    const layout = Either.getOrThrow(Layout.fromMetainfo(withTrackers))
    const storage = yield* Storage.makeMemory({ layout, bytes: data })
    const session = yield* Session.make({ host: "127.0.0.1", port: 0 })
    const swarm = yield* session.add({ metainfo: withTrackers, storage, have, ...options })
    return { meta: withTrackers, torrent, port: session.port, swarm }
  })

/** Every piece left the seeder once before any left twice, and nothing more left it until then. */
const sentEachOnce = (swarm: Session.Swarm, meta: Metainfo.Metainfo) => {
  const seeding = swarm.unsafeStatus().initialSeeding
  assert.isDefined(seeding, "a seeder that starts complete reports its initial seeding")
  assert.strictEqual(seeding!.piecesOut, meta.pieceCount, JSON.stringify(seeding))
  assert.strictEqual(seeding!.repeatedBeforeAllOut, 0, JSON.stringify(seeding))
  assert.strictEqual(seeding!.uploadedBeforeAllOut, meta.totalLength, JSON.stringify(seeding))
}

const sameBytes = (file: string, data: Uint8Array) => Buffer.compare(NFS.readFileSync(file), data) === 0

/**
 * transmission-cli downloading from `seed` into `dir`/out (it cannot dial out: the seeder dials it
 * once it listens); its port, and its result to join.
 */
const transmissionFrom = (seed: { readonly torrent: string; readonly swarm: Session.Swarm }, dir: string) =>
  Effect.gen(function* () {
    const port = yield* freePort
    const out = NPath.join(dir, "out")
    NFS.mkdirSync(out)
    const download = yield* Effect.fork(
      transmissionDownload({ torrent: seed.torrent, dir: out, listenPort: port, timeoutMs: 60_000 })
    )
    yield* listening(port)
    yield* seed.swarm.connect("127.0.0.1", port)
    return { port, out, download }
  })

describe("super-seeding clients that are not ezio", () => {
  it.live.skipIf(!hasLibtorrent)(
    "three libtorrent downloaders that know each other: byte-identical copies, no piece sent twice before all are out",
    () =>
      Effect.gen(function* () {
        const dir = yield* tempDir("ezio-superseed-")
        const data = random(SIZE)
        // At loopback speed the first client to start has every piece before the others ask:
        // held to 1 MiB/s, the seeder is still sending when all three are asking.
        const seed = yield* seeder(dir, data, undefined, { uploadRateLimit: 1024 * 1024 })
        const ports = yield* Effect.all([freePort, freePort, freePort])
        const results = yield* Effect.all(
          ports.map((port, i) => {
            const out = NPath.join(dir, `out${i}`)
            NFS.mkdirSync(out)
            return libtorrentDownload({
              torrent: seed.torrent,
              saveDir: out,
              listenPort: port,
              peers: [seed.port, ...ports.filter((p) => p !== port)],
              preset: "default",
              timeoutMs: 60_000
            }).pipe(Effect.map((summary) => ({ summary, out })))
          }),
          { concurrency: "unbounded" }
        )
        for (const { summary, out } of results) {
          assert.isTrue(summary.done, JSON.stringify(summary))
          assert.strictEqual(summary.hash_failures, 0)
          assert.isTrue(sameBytes(NPath.join(out, "disk.img"), data), `${out} differs`)
        }
        sentEachOnce(seed.swarm, seed.meta)
      }).pipe(Effect.scoped, Effect.provide(env)),
    90_000
  )

  it.live.skipIf(!hasLibtorrent)(
    "one libtorrent downloader alone still completes, each piece sent once",
    () =>
      Effect.gen(function* () {
        const dir = yield* tempDir("ezio-superseed-")
        const data = random(SIZE)
        const seed = yield* seeder(dir, data)
        const out = NPath.join(dir, "out")
        NFS.mkdirSync(out)
        const summary = yield* libtorrentDownload({
          torrent: seed.torrent,
          saveDir: out,
          peers: [seed.port],
          preset: "default",
          timeoutMs: 60_000
        })
        assert.isTrue(summary.done, JSON.stringify(summary))
        assert.isTrue(sameBytes(NPath.join(out, "disk.img"), data))
        sentEachOnce(seed.swarm, seed.meta)
        assert.strictEqual(seed.swarm.unsafeStatus().uploaded, seed.meta.totalLength, "nothing sent twice")
      }).pipe(Effect.scoped, Effect.provide(env)),
    90_000
  )

  it.live.skipIf(!hasAria2)(
    "three aria2 downloaders through our tracker: byte-identical copies, no piece sent twice before all are out",
    () =>
      Effect.gen(function* () {
        const dir = yield* tempDir("ezio-superseed-")
        const tracker = yield* EmbeddedTracker.make({ host: "127.0.0.1", port: 0, interval: 5 })
        const data = random(SIZE)
        const seed = yield* seeder(dir, data, [[tracker.url]])
        const client = yield* Tracker.make()
        yield* seed.swarm.announce(client, { tiers: [[tracker.url]] })
        yield* tracker
          .swarm(seed.meta.infoHash)
          .pipe(
            Effect.repeat({ until: (peers) => peers.length > 0, schedule: Schedule.spaced("50 millis") }),
            Effect.timeout("10 seconds")
          )
        const results = yield* Effect.all(
          [0, 1, 2].map((i) => {
            const out = NPath.join(dir, `out${i}`)
            NFS.mkdirSync(out)
            return aria2Download({ torrent: seed.torrent, dir: out, timeoutMs: 60_000 }).pipe(
              Effect.map((result) => ({ result, out }))
            )
          }),
          { concurrency: "unbounded" }
        )
        for (const { result, out } of results) {
          assert.isTrue(result.done, result.log)
          assert.isTrue(sameBytes(NPath.join(out, "disk.img"), data), `${out} differs`)
        }
        sentEachOnce(seed.swarm, seed.meta)
      }).pipe(Effect.scoped, Effect.provide(env)),
    90_000
  )

  it.live.skipIf(!hasTransmission)(
    "transmission-cli alone (it announces no piece to the peer it got it from) is told of every piece at once: byte-identical, each piece sent once",
    () =>
      Effect.gen(function* () {
        const dir = yield* tempDir("ezio-superseed-")
        const data = random(SIZE)
        const seed = yield* seeder(dir, data)
        const { download, out } = yield* transmissionFrom(seed, dir)
        const result = yield* Fiber.join(download)
        // Super-seeded, it stopped at its first two pieces, which it never announced to us.
        assert.isTrue(result.done, result.stdout + result.stderr)
        assert.isTrue(sameBytes(NPath.join(out, "disk.img"), data))
        sentEachOnce(seed.swarm, seed.meta)
        assert.strictEqual(seed.swarm.unsafeStatus().uploaded, seed.meta.totalLength, "nothing sent twice")
        // The only downloader: no piece offered one by one, none waited for (it was offered two
        // and then sat idle until taken for a client that does not announce).
        assert.strictEqual(seed.swarm.unsafeStatus().initialSeeding!.offered, 0)
      }).pipe(Effect.scoped, Effect.provide(env)),
    90_000
  )

  it.live.skipIf(!hasTransmission || !hasLibtorrent)(
    "transmission-cli served as usual, then a libtorrent downloader that comes later: it is offered pieces one by one, each piece sent once",
    () =>
      Effect.gen(function* () {
        const dir = yield* tempDir("ezio-superseed-")
        const data = random(SIZE)
        // Held to 512 KiB/s, the seeder is still sending to transmission when libtorrent comes
        // (transmission asks slowly at first: seconds for the 3 MiB).
        const seed = yield* seeder(dir, data, undefined, { uploadRateLimit: 512 * 1024 })
        const { download, out, port } = yield* transmissionFrom(seed, dir)
        yield* Effect.sync(() => seed.swarm.unsafeStatus().uploaded).pipe(
          Effect.repeat({ until: (bytes) => bytes > 0, schedule: Schedule.spaced("50 millis") }),
          Effect.timeout("40 seconds")
        )
        const later = NPath.join(dir, "later")
        NFS.mkdirSync(later)
        const summary = yield* libtorrentDownload({
          torrent: seed.torrent,
          saveDir: later,
          peers: [seed.port, port],
          preset: "default",
          timeoutMs: 60_000
        })
        const result = yield* Fiber.join(download)
        assert.isTrue(result.done, result.stdout + result.stderr)
        assert.isTrue(summary.done, JSON.stringify(summary))
        assert.isTrue(sameBytes(NPath.join(out, "disk.img"), data))
        assert.isTrue(sameBytes(NPath.join(later, "disk.img"), data))
        sentEachOnce(seed.swarm, seed.meta)
        const offered = seed.swarm.unsafeStatus().initialSeeding!.offered
        assert.isAbove(offered, 0, "libtorrent came while transmission lacked pieces")
        assert.isBelow(offered, seed.meta.pieceCount, "transmission's pieces were never offered")
      }).pipe(Effect.scoped, Effect.provide(env)),
    90_000
  )
})
