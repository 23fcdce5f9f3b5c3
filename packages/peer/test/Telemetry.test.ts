/**
 * What an Effect app can export: the `PeerMetrics` a swarm copies its counters into, the deploy's
 * gauges, and the spans on a deploy's main steps (check, add, announce, magnet metadata fetch).
 */
import * as NCrypto from "node:crypto"
import { assert, describe, expect, it } from "@effect/vitest"
import { DiskIo } from "@ezio/disk-io"
import { Deploy, EmbeddedTracker, PeerMetrics, Session, Tracker } from "@ezio/peer"
import { BufferPool } from "@ezio/pool"
import { Bitfield, Check, Hasher, Layout, Storage } from "@ezio/storage"
import { Effect, Either, Layer, Metric, Tracer } from "effect"
import { bytes20, eventually, request } from "./trackerSupport.js"
import { makeTorrent, random } from "./torrentSupport.js"

const env = DiskIo.layer().pipe(
  Layer.provideMerge(Hasher.layer({ threads: 2 })),
  Layer.provideMerge(BufferPool.layer({ capacity: 32 * 1024 * 1024 }))
)

/** A torrent name no other test shares, so its tagged metrics are this test's alone. */
const uniqueName = (what: string) => `${what}-${NCrypto.randomBytes(4).toString("hex")}.img`

/** `metric` as the swarm of `torrent` added under `Effect.tagMetrics("role", role)` updates it. */
const of = <Type, In, Out>(metric: Metric.Metric<Type, In, Out>, torrent: string, role: string) =>
  metric.pipe(Metric.tagged("torrent", torrent), Metric.tagged("role", role))

const counter = (metric: Metric.Metric.Counter<number>, torrent: string, role: string) =>
  Effect.map(Metric.value(of(metric, torrent, role)), (s) => s.count)

const gauge = (metric: Metric.Metric.Gauge<number>, torrent: string, role: string) =>
  Effect.map(Metric.value(of(metric, torrent, role)), (s) => s.value)

describe("PeerMetrics", () => {
  it.live(
    "a seed and a leech copy bytes, pieces and peers into their tagged metrics, the last second too",
    () =>
      Effect.gen(function* () {
        const name = uniqueName("metrics")
        const data = random(4 * 1024 * 1024 + 1234)
        const meta = makeTorrent(data, 64 * 1024, name)
        const layout = Either.getOrThrow(Layout.fromMetainfo(meta))
        const have = Bitfield.make(meta.pieceCount)
        Bitfield.setAll(have)
        const final = yield* Effect.gen(function* () {
          const seeder = yield* Session.make({ host: "127.0.0.1", port: 0 })
          const leecher = yield* Session.make({ host: "127.0.0.1", port: 0, listen: false })
          // Slow enough (about 3 s) that the 1 s copy runs while the two are connected.
          const seed = yield* seeder
            .add({
              metainfo: meta,
              storage: yield* Storage.makeMemory({ layout, bytes: data }),
              have,
              uploadRateLimit: 1024 * 1024
            })
            .pipe(Effect.tagMetrics("role", "seed"))
          const leech = yield* leecher
            .add({ metainfo: meta, storage: yield* Storage.makeMemory({ layout }) })
            .pipe(Effect.tagMetrics("role", "leech"))
          expect(yield* gauge(PeerMetrics.pieces, name, "leech")).toBe(0)
          yield* leech.connect("127.0.0.1", seeder.port)
          // Both sides count the connection while the download runs.
          yield* eventually(
            () =>
              Effect.runSync(gauge(PeerMetrics.peers, name, "leech")) === 1 &&
              Effect.runSync(gauge(PeerMetrics.peers, name, "seed")) === 1,
            "peers gauges at 1",
            30_000
          )
          const during = yield* gauge(PeerMetrics.piecesHave, name, "leech")
          expect(during).toBeLessThan(meta.pieceCount)
          expect(yield* gauge(PeerMetrics.pieces, name, "leech")).toBe(meta.pieceCount)
          yield* leech.complete.pipe(Effect.timeout("60 seconds"))
          return { seed, leech }
        }).pipe(
          Effect.scoped,
          // read once the swarms have stopped: nothing moves any more
          Effect.map(({ leech, seed }) => ({ seed: seed.unsafeStatus(), leech: leech.unsafeStatus() }))
        )
        // The swarms have stopped: their last copy brought every metric to the final status.
        expect(final.leech.downloaded).toBeGreaterThanOrEqual(data.length)
        expect(yield* counter(PeerMetrics.downloadedBytes, name, "leech")).toBe(final.leech.downloaded)
        expect(yield* counter(PeerMetrics.uploadedBytes, name, "leech")).toBe(final.leech.uploaded)
        expect(yield* counter(PeerMetrics.redundantBytes, name, "leech")).toBe(final.leech.redundant)
        expect(final.seed.uploaded).toBeGreaterThanOrEqual(data.length)
        expect(yield* counter(PeerMetrics.uploadedBytes, name, "seed")).toBe(final.seed.uploaded)
        expect(yield* counter(PeerMetrics.downloadedBytes, name, "seed")).toBe(0)
        for (const role of ["seed", "leech"]) {
          expect(yield* gauge(PeerMetrics.piecesHave, name, role)).toBe(meta.pieceCount)
          expect(yield* gauge(PeerMetrics.pieces, name, role)).toBe(meta.pieceCount)
          expect(yield* counter(PeerMetrics.hashFailures, name, role)).toBe(0)
          expect(yield* counter(PeerMetrics.bannedPeers, name, role)).toBe(0)
        }
        // The leech closed its connection to the seed on completing (both sides seeds).
        expect(yield* gauge(PeerMetrics.peers, name, "leech")).toBe(0)
      }).pipe(Effect.provide(env)),
    120_000
  )

  it.live(
    "a bad-data seeder shows in the hash failures and banned peers counters",
    () =>
      Effect.gen(function* () {
        const name = uniqueName("banned")
        const data = random(2 * 1024 * 1024)
        const meta = makeTorrent(data, 64 * 1024, name)
        const layout = Either.getOrThrow(Layout.fromMetainfo(meta))
        const have = Bitfield.make(meta.pieceCount)
        Bitfield.setAll(have)
        const final = yield* Effect.gen(function* () {
          const bad = yield* Session.make({ host: "127.0.0.1", port: 0 })
          // Every byte flipped: each piece it sends fails its hash check.
          yield* bad.add({
            metainfo: meta,
            storage: yield* Storage.makeMemory({ layout, bytes: data.map((b) => b ^ 0x5a) }),
            have
          })
          const leecher = yield* Session.make({ host: "127.0.0.1", port: 0, listen: false })
          const leech = yield* leecher
            .add({ metainfo: meta, storage: yield* Storage.makeMemory({ layout }) })
            .pipe(Effect.tagMetrics("role", "leech"))
          yield* leech.connect("127.0.0.1", bad.port)
          yield* eventually(() => leech.unsafeStatus().banned.length > 0, "the bad seeder banned", 60_000)
          return leech.unsafeStatus()
        }).pipe(Effect.scoped)
        expect(final.hashFailures).toBeGreaterThan(0)
        expect(yield* counter(PeerMetrics.hashFailures, name, "leech")).toBe(final.hashFailures)
        expect(yield* counter(PeerMetrics.bannedPeers, name, "leech")).toBe(final.banned.length)
        expect(final.banned.length).toBe(1)
        expect(yield* gauge(PeerMetrics.piecesHave, name, "leech")).toBe(0)
      }).pipe(Effect.provide(env)),
    120_000
  )

  it.scopedLive("the deploy's gauges: targets expected, bytes held and bytes to hold", () =>
    Effect.gen(function* () {
      const infoHash = bytes20(1)
      const deploy = yield* Deploy.make({ torrents: [{ infoHash, size: 1000 }] })
      const server = yield* EmbeddedTracker.make({ host: "127.0.0.1", port: 0, onAnnounce: deploy.record })
      const client = yield* Tracker.make({ httpTimeout: "5 seconds" })
      const waiting = yield* Effect.fork(deploy.awaitDone(1))
      yield* client.announce(server.url, request(bytes20(2), infoHash, 6881, { left: 0, event: "completed" }))
      yield* client.announce(server.url, request(bytes20(3), infoHash, 6882, { left: 600, event: "started" }))
      yield* client.announce(server.url, request(bytes20(2), infoHash, 6881, { left: 0, event: "stopped" }))
      const done = yield* waiting.await.pipe(Effect.flatten, Effect.timeout("10 seconds"))
      assert.strictEqual(done.totals.byState.done, 1)
      expect((yield* Metric.value(Deploy.targetsExpected)).value).toBe(1)
      yield* eventually(
        () => Effect.runSync(Metric.value(Deploy.haveBytes)).value === 1400,
        "have bytes of both targets"
      )
      expect((yield* Metric.value(Deploy.sizeBytes)).value).toBe(2000)
      expect((yield* Metric.value(Deploy.targetsGauge.pipe(Metric.tagged("state", "done")))).value).toBe(1)
    })
  )
})

interface Recorded {
  readonly name: string
  readonly span: Tracer.Span
}

/** The native tracer, remembering every span it starts. */
const recordingTracer = (native: Tracer.Tracer, spans: Array<Recorded>): Tracer.Tracer =>
  Tracer.make({
    span: (name, ...rest) => {
      const span = native.span(name, ...rest)
      spans.push({ name, span })
      return span
    },
    context: (f, fiber) => native.context(f, fiber)
  })

const attributesOf = (spans: ReadonlyArray<Recorded>, name: string) =>
  spans.filter((s) => s.name === name).map((s) => Object.fromEntries(s.span.attributes))

const ended = (spans: ReadonlyArray<Recorded>, name: string) =>
  spans.filter((s) => s.name === name).every((s) => s.span.status._tag === "Ended")

describe("spans", () => {
  it.live(
    "check, add, each announce and a magnet's metadata fetch run in named spans with their attributes",
    () =>
      Effect.gen(function* () {
        const spans: Array<Recorded> = []
        const native = yield* Effect.tracer
        const url = yield* Effect.gen(function* () {
          const name = uniqueName("spans")
          const data = random(1024 * 1024 + 99)
          const meta = makeTorrent(data, 64 * 1024, name)
          const layout = Either.getOrThrow(Layout.fromMetainfo(meta))
          const seedStorage = yield* Storage.makeMemory({ layout, bytes: data })
          const have = yield* Check.check(seedStorage, { pieceHashes: meta.pieces })
          const server = yield* EmbeddedTracker.make({ host: "127.0.0.1", port: 0 })
          const tracker = yield* Tracker.make({ httpTimeout: "5 seconds" })
          const seeder = yield* Session.make({ host: "127.0.0.1", port: 0 })
          const seed = yield* seeder.add({ metainfo: meta, storage: seedStorage, have })
          yield* seed.announce(tracker, { tiers: [[server.url]] })
          // The leech knows only the link and its tracker: the seeder comes from the announce.
          const leecher = yield* Session.make({ host: "127.0.0.1", port: 0 })
          const leech = yield* leecher
            .addMagnet({
              magnet: { infoHash: meta.infoHash, trackers: [server.url], peers: [] },
              tracker,
              storageFor: (metainfo) =>
                Effect.map(
                  Storage.makeMemory({ layout: Either.getOrThrow(Layout.fromMetainfo(metainfo)) }),
                  (storage) => ({ storage })
                )
            })
            .pipe(Effect.timeout("30 seconds"))
          yield* leech.complete.pipe(Effect.timeout("60 seconds"))

          expect(attributesOf(spans, "ezio.storage.check")).toEqual([
            { torrent: name, pieces: meta.pieceCount, bytes: data.length, have: meta.pieceCount }
          ])
          const adds = attributesOf(spans, "ezio.session.add")
          expect(adds).toEqual([
            { torrent: name, infoHash: meta.infoHashHex, pieces: meta.pieceCount, have: meta.pieceCount },
            { torrent: name, infoHash: meta.infoHashHex, pieces: meta.pieceCount, have: 0 }
          ])
          expect(attributesOf(spans, "ezio.session.fetchMetadata")).toEqual([
            { infoHash: meta.infoHashHex, peers: 0, torrent: name, pieces: meta.pieceCount }
          ])
          const announces = attributesOf(spans, "ezio.tracker.announce")
          // The seed's `started` (left 0), the magnet fetch's `started`: each with its URL and result.
          expect(announces.length).toBeGreaterThanOrEqual(2)
          for (const a of announces) {
            expect(a.url).toBe(server.url)
            expect(a.infoHash).toBe(meta.infoHashHex)
            expect(typeof a.peers).toBe("number")
          }
          expect(announces.filter((a) => a.event === "started").map((a) => a.left)).toContain(0)
          expect(announces.filter((a) => a.event === "started").length).toBeGreaterThanOrEqual(2)
          for (const step of ["ezio.storage.check", "ezio.session.add", "ezio.session.fetchMetadata"])
            expect(ended(spans, step)).toBe(true)
          return server.url
        }).pipe(Effect.scoped, Effect.withTracer(recordingTracer(native, spans)))
        // Closing the scope sent `stopped` to the tracker, in a span of its own.
        const stopped = attributesOf(spans, "ezio.tracker.announce").filter((a) => a.event === "stopped")
        expect(stopped.length).toBeGreaterThanOrEqual(1)
        for (const a of stopped) expect(a.url).toBe(url)
        expect(ended(spans, "ezio.tracker.announce")).toBe(true)
      }).pipe(Effect.provide(env)),
    120_000
  )
})
