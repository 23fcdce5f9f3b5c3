/**
 * The interop harness itself, without our seeder: libtorrent seeds, libtorrent and aria2 download.
 */
import * as Crypto from "node:crypto"
import * as Http from "node:http"
import type * as Net from "node:net"
import * as NFS from "node:fs"
import * as OS from "node:os"
import * as NPath from "node:path"
import { assert, describe, it } from "@effect/vitest"
import { Effect } from "effect"
import {
  aria2Download,
  freePort,
  hasAria2,
  hasLibtorrent,
  hasTransmission,
  libtorrentCreate,
  libtorrentDownload,
  libtorrentInfo,
  libtorrentSeed,
  transmissionDownload
} from "@ezio/test-support/clients"

const SIZE = 8 * 1024 * 1024

/** A temp dir with `src/data.bin` (random) — removed when the scope closes. */
const fixture = Effect.acquireRelease(
  Effect.sync(() => {
    const root = NFS.mkdtempSync(NPath.join(OS.tmpdir(), "ezio-clients-"))
    NFS.mkdirSync(NPath.join(root, "src"))
    NFS.mkdirSync(NPath.join(root, "dst"))
    const data = Crypto.randomBytes(SIZE)
    NFS.writeFileSync(NPath.join(root, "src", "data.bin"), data)
    return { root, src: NPath.join(root, "src"), dst: NPath.join(root, "dst"), data }
  }),
  ({ root }) => Effect.sync(() => NFS.rmSync(root, { recursive: true, force: true }))
)

const bencode = (v: unknown): Buffer => {
  if (typeof v === "number") return Buffer.from(`i${Math.trunc(v)}e`)
  if (typeof v === "string") return bencode(Buffer.from(v))
  if (Buffer.isBuffer(v)) return Buffer.concat([Buffer.from(`${v.length}:`), v])
  if (Array.isArray(v)) return Buffer.concat([Buffer.from("l"), ...v.map(bencode), Buffer.from("e")])
  const entries = Object.entries(v as Record<string, unknown>).sort(([a], [b]) => (a < b ? -1 : 1))
  return Buffer.concat([
    Buffer.from("d"),
    ...entries.flatMap(([k, x]) => [bencode(k), bencode(x)]),
    Buffer.from("e")
  ])
}

/** A minimal HTTP tracker on 127.0.0.1 answering every announce with `peers()` (compact). */
const tinyTracker = (peers: () => ReadonlyArray<number>) =>
  Effect.acquireRelease(
    Effect.async<{ server: Http.Server; port: number; announces: Array<string> }>((resume) => {
      const announces: Array<string> = []
      const server = Http.createServer((req, res) => {
        announces.push(req.url ?? "")
        const compact = Buffer.concat(
          peers().map((port) => {
            const b = Buffer.alloc(6)
            b.set([127, 0, 0, 1], 0)
            b.writeUInt16BE(port, 4)
            return b
          })
        )
        res.writeHead(200, { "content-type": "text/plain" })
        res.end(bencode({ interval: 60, "min interval": 5, complete: 1, incomplete: 0, peers: compact }))
      })
      server.listen(0, "127.0.0.1", () =>
        resume(Effect.succeed({ server, port: (server.address() as Net.AddressInfo).port, announces }))
      )
    }),
    ({ server }) =>
      Effect.async<void>((resume) => {
        server.closeAllConnections()
        server.close(() => resume(Effect.void))
      })
  )

describe("interop harness (no ezio code)", () => {
  it.scoped.skipIf(!hasLibtorrent)(
    "libtorrent seeds, libtorrent downloads by peer address, byte-identical",
    () =>
      Effect.gen(function* () {
        const fx = yield* fixture
        const torrent = NPath.join(fx.root, "t.torrent")
        const created = yield* libtorrentCreate({ file: NPath.join(fx.src, "data.bin"), out: torrent })
        const info = yield* libtorrentInfo(torrent)
        assert.strictEqual(info.info_hash, created.info_hash)
        assert.match(info.info_hash, /^[0-9a-f]{40}$/)
        assert.strictEqual(info.num_pieces, SIZE / (256 * 1024))
        assert.deepStrictEqual(info.files, [{ path: "data.bin", size: SIZE }])

        const seeder = yield* libtorrentSeed({ torrent, saveDir: fx.src })
        assert.isAbove(seeder.port, 0)
        assert.strictEqual(seeder.infoHash, info.info_hash)

        const t0 = Date.now()
        const summary = yield* libtorrentDownload({
          torrent,
          saveDir: fx.dst,
          peers: [seeder.port],
          timeoutMs: 40_000
        })
        console.log(`libtorrent -> libtorrent: ${JSON.stringify(summary)} (wall ${Date.now() - t0} ms)`)
        assert.isTrue(summary.done, summary.error ?? "")
        assert.strictEqual(summary.hash_failures, 0)
        assert.strictEqual(summary.bytes, SIZE)
        assert.isTrue(NFS.readFileSync(NPath.join(fx.dst, "data.bin")).equals(fx.data))
      }),
    60_000
  )

  it.scoped.skipIf(!hasLibtorrent)(
    "libtorrent seeds with high_performance_seed and --recheck",
    () =>
      Effect.gen(function* () {
        const fx = yield* fixture
        const torrent = NPath.join(fx.root, "t.torrent")
        yield* libtorrentCreate({ file: NPath.join(fx.src, "data.bin"), out: torrent, pieceLength: 1 << 20 })
        const seeder = yield* libtorrentSeed({
          torrent,
          saveDir: fx.src,
          highPerformance: true,
          recheck: true
        })
        const summary = yield* libtorrentDownload({
          torrent,
          saveDir: fx.dst,
          peers: [`127.0.0.1:${seeder.port}`],
          timeoutMs: 40_000
        })
        console.log(`libtorrent(high perf) -> libtorrent: ${JSON.stringify(summary)}`)
        assert.isTrue(summary.done, summary.error ?? "")
        assert.strictEqual(summary.hash_failures, 0)
        assert.isTrue(NFS.readFileSync(NPath.join(fx.dst, "data.bin")).equals(fx.data))
      }),
    60_000
  )

  it.scoped.skipIf(!hasLibtorrent)(
    "a download with no reachable peer times out with done=false",
    () =>
      Effect.gen(function* () {
        const fx = yield* fixture
        const torrent = NPath.join(fx.root, "t.torrent")
        yield* libtorrentCreate({ file: NPath.join(fx.src, "data.bin"), out: torrent })
        // port 1 on loopback: nothing listens there
        const summary = yield* libtorrentDownload({ torrent, saveDir: fx.dst, peers: [1], timeoutMs: 3_000 })
        assert.isFalse(summary.done)
        assert.isNotNull(summary.error)
      }),
    30_000
  )

  it.scoped.skipIf(!hasLibtorrent || !hasAria2)(
    "aria2 downloads from a libtorrent seeder found through a tiny HTTP tracker, byte-identical",
    () =>
      Effect.gen(function* () {
        const fx = yield* fixture
        let seederPort = 0
        const tracker = yield* tinyTracker(() => (seederPort > 0 ? [seederPort] : []))
        const torrent = NPath.join(fx.root, "t.torrent")
        yield* libtorrentCreate({
          file: NPath.join(fx.src, "data.bin"),
          out: torrent,
          trackers: [`http://127.0.0.1:${tracker.port}/announce`]
        })
        const seeder = yield* libtorrentSeed({ torrent, saveDir: fx.src, noTrackers: true })
        seederPort = seeder.port

        const result = yield* aria2Download({ torrent, dir: fx.dst, timeoutMs: 40_000 })
        console.log(
          `libtorrent -> aria2: exit ${result.exitCode} in ${result.seconds.toFixed(2)} s ` +
            `(${result.mib_per_s.toFixed(1)} MiB/s), transfer ${result.transfer_seconds?.toFixed(3)} s ` +
            `(${result.transfer_mib_per_s?.toFixed(1)} MiB/s), ${tracker.announces.length} announces`
        )
        assert.strictEqual(result.exitCode, 0, result.stderr + result.stdout + result.log)
        assert.isTrue(result.done)
        assert.strictEqual(result.hash_failures, 0)
        assert.strictEqual(result.bytes, SIZE)
        assert.isAbove(tracker.announces.length, 0)
        assert.isTrue(NFS.readFileSync(NPath.join(fx.dst, "data.bin")).equals(fx.data))
      }),
    60_000
  )

  it.scoped.skipIf(!hasLibtorrent)(
    "libtorrent downloads with --tracker-only from a seeder listed by a tiny HTTP tracker",
    () =>
      Effect.gen(function* () {
        const fx = yield* fixture
        let seederPort = 0
        const tracker = yield* tinyTracker(() => (seederPort > 0 ? [seederPort] : []))
        const torrent = NPath.join(fx.root, "t.torrent")
        yield* libtorrentCreate({
          file: NPath.join(fx.src, "data.bin"),
          out: torrent,
          trackers: [`http://127.0.0.1:${tracker.port}/announce`]
        })
        const seeder = yield* libtorrentSeed({ torrent, saveDir: fx.src, noTrackers: true })
        seederPort = seeder.port
        const summary = yield* libtorrentDownload({
          torrent,
          saveDir: fx.dst,
          trackerOnly: true,
          timeoutMs: 40_000
        })
        console.log(`libtorrent -> libtorrent (tracker): ${JSON.stringify(summary)}`)
        assert.isTrue(summary.done, summary.error ?? "")
        assert.strictEqual(summary.hash_failures, 0)
        assert.isAbove(tracker.announces.length, 0)
        assert.isTrue(NFS.readFileSync(NPath.join(fx.dst, "data.bin")).equals(fx.data))
      }),
    60_000
  )

  it.scoped.skipIf(!hasLibtorrent || !hasTransmission)(
    "transmission-cli downloads from a libtorrent seeder that dials it, byte-identical",
    () =>
      Effect.gen(function* () {
        const fx = yield* fixture
        const torrent = NPath.join(fx.root, "t.torrent")
        yield* libtorrentCreate({ file: NPath.join(fx.src, "data.bin"), out: torrent })
        const port = yield* freePort
        yield* libtorrentSeed({ torrent, saveDir: fx.src, peers: [port] })
        const result = yield* transmissionDownload({
          torrent,
          dir: fx.dst,
          listenPort: port,
          timeoutMs: 45_000
        })
        console.log(
          `libtorrent -> transmission: done=${result.done} in ${result.seconds.toFixed(2)} s; ${result.stdout}`
        )
        assert.isTrue(result.done, result.stderr + result.stdout)
        assert.isTrue(NFS.readFileSync(NPath.join(fx.dst, "data.bin")).equals(fx.data))
      }),
    60_000
  )
})
