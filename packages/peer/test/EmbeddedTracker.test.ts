import * as Http from "node:http"
import { assert, describe, it } from "@effect/vitest"
import { Bencode } from "@ezio/torrent"
import { Effect, Either, Layer, Option, Queue, TestClock } from "effect"
import * as EmbeddedTracker from "../src/EmbeddedTracker.js"
import * as Tracker from "../src/Tracker.js"
import { bytes20, request } from "./trackerSupport.js"

const setup = (options: EmbeddedTracker.Options = {}) =>
  Effect.all({
    server: EmbeddedTracker.make({ host: "127.0.0.1", port: 0, ...options }),
    client: Tracker.make({ httpTimeout: "5 seconds" })
  })

const rawGet = (url: string) =>
  Effect.async<{ status: number; body: Uint8Array }>((resume) => {
    Http.get(url, (res) => {
      const chunks: Array<Buffer> = []
      res.on("data", (c: Buffer) => chunks.push(c))
      res.on("end", () =>
        resume(Effect.succeed({ status: res.statusCode ?? 0, body: new Uint8Array(Buffer.concat(chunks)) }))
      )
    })
  })

describe("EmbeddedTracker + HTTP tracker client", () => {
  it.scopedLive(
    "binds an ephemeral port and exposes it in the URL",
    () =>
      Effect.gen(function* () {
        const { server } = yield* setup()
        assert.isAbove(server.port, 0)
        assert.strictEqual(server.url, `http://127.0.0.1:${server.port}/announce`)
        assert.strictEqual(server.scrapeUrl, `http://127.0.0.1:${server.port}/scrape`)
      }),
    10_000
  )

  it.scopedLive(
    "two peers announce and see each other; stopped removes",
    () =>
      Effect.gen(function* () {
        const { client, server } = yield* setup()
        const infoHash = bytes20(1)
        const a = bytes20(2)
        const b = bytes20(3)
        const first = yield* client.announce(server.url, request(a, infoHash, 6881, { event: "started" }))
        assert.deepStrictEqual(first.peers, [])
        assert.strictEqual(first.interval, 5)
        assert.strictEqual(first.minInterval, 2)
        const second = yield* client.announce(
          server.url,
          request(b, infoHash, 6882, { event: "started", left: 0 })
        )
        assert.deepStrictEqual(second.peers, [{ ip: "127.0.0.1", port: 6881 }])
        assert.strictEqual(second.complete, 1)
        assert.strictEqual(second.incomplete, 1)
        const again = yield* client.announce(server.url, request(a, infoHash, 6881))
        assert.deepStrictEqual(again.peers, [{ ip: "127.0.0.1", port: 6882 }])

        yield* client.announce(server.url, request(b, infoHash, 6882, { event: "stopped", left: 0 }))
        const after = yield* client.announce(server.url, request(a, infoHash, 6881))
        assert.deepStrictEqual(after.peers, [])
        assert.strictEqual(after.complete, 0)
        assert.strictEqual((yield* server.swarm(infoHash)).length, 1)
      }),
    10_000
  )

  it.scopedLive(
    "honours the ip parameter and returns non-compact peer dictionaries with peer ids",
    () =>
      Effect.gen(function* () {
        const { client, server } = yield* setup()
        const infoHash = bytes20(4)
        const a = bytes20(5)
        yield* client.announce(server.url, request(a, infoHash, 7000, { ip: "10.1.2.3" }))
        const url = Tracker.announceUrl(server.url, request(bytes20(6), infoHash, 7001))
          .replace("compact=1", "compact=0")
          .replace("&no_peer_id=1", "")
        const { body } = yield* rawGet(url)
        const parsed = Tracker.parseAnnounceResponse(server.url, body)
        assert.isTrue(Either.isRight(parsed))
        if (Either.isRight(parsed)) {
          assert.strictEqual(parsed.right.peers.length, 1)
          assert.strictEqual(parsed.right.peers[0]!.ip, "10.1.2.3")
          assert.strictEqual(parsed.right.peers[0]!.port, 7000)
          assert.deepStrictEqual(Array.from(parsed.right.peers[0]!.peerId ?? []), Array.from(a))
        }
      }),
    10_000
  )

  it.scopedLive(
    "a whitelist refuses other info-hashes with a typed failure carrying the tracker's message",
    () =>
      Effect.gen(function* () {
        const allowed = bytes20(7)
        const { client, server } = yield* setup({ whitelist: [Buffer.from(allowed).toString("hex")] })
        const ok = yield* client.announce(server.url, request(bytes20(8), allowed, 1))
        assert.deepStrictEqual(ok.peers, [])
        const error = yield* client.announce(server.url, request(bytes20(8), bytes20(9), 1)).pipe(Effect.flip)
        assert.strictEqual(error._tag, "TrackerError")
        assert.strictEqual(error.reason, "Failure")
        assert.strictEqual(error.failure, "torrent not registered with this tracker")
        assert.include(error.message, server.url)
        assert.include(error.message, "torrent not registered")
        yield* server.allow(bytes20(9))
        yield* client.announce(server.url, request(bytes20(8), bytes20(9), 1))
      }),
    10_000
  )

  it.scopedLive(
    "scrape reports complete, incomplete and downloaded",
    () =>
      Effect.gen(function* () {
        const { client, server } = yield* setup()
        const infoHash = bytes20(10)
        const other = bytes20(11)
        yield* client.announce(server.url, request(bytes20(12), infoHash, 1, { event: "started" }))
        yield* client.announce(server.url, request(bytes20(13), infoHash, 2, { event: "started" }))
        yield* client.announce(server.url, request(bytes20(13), infoHash, 2, { event: "completed", left: 0 }))
        yield* client.announce(server.url, request(bytes20(14), other, 3, { left: 0 }))
        const scrape = yield* client.scrape(server.url, [infoHash, other, bytes20(15)])
        assert.deepStrictEqual(scrape.get(Buffer.from(infoHash).toString("hex")), {
          complete: 1,
          incomplete: 1,
          downloaded: 1
        })
        assert.deepStrictEqual(scrape.get(Buffer.from(other).toString("hex")), {
          complete: 1,
          incomplete: 0,
          downloaded: 0
        })
        assert.deepStrictEqual(scrape.get(Buffer.from(bytes20(15)).toString("hex")), {
          complete: 0,
          incomplete: 0,
          downloaded: 0
        })
      }),
    10_000
  )

  // on the TestClock (the sockets stay real): the tracker reads its time from the Clock
  it.scoped(
    "peers expire after two intervals",
    () =>
      Effect.gen(function* () {
        const { client, server } = yield* setup({ interval: 1 })
        const infoHash = bytes20(16)
        yield* client.announce(server.url, request(bytes20(17), infoHash, 1))
        assert.strictEqual((yield* server.swarm(infoHash)).length, 1)
        yield* TestClock.adjust("2 seconds")
        assert.strictEqual((yield* server.swarm(infoHash)).length, 1)
        yield* TestClock.adjust("200 millis")
        assert.strictEqual((yield* server.swarm(infoHash)).length, 0)
        const fresh = yield* client.announce(server.url, request(bytes20(18), infoHash, 2))
        assert.deepStrictEqual(fresh.peers, [])
      }),
    10_000
  )

  it.scoped(
    "a fiber on the Clock forgets abandoned swarms every interval",
    () =>
      Effect.gen(function* () {
        const { client, server } = yield* setup({ interval: 1 })
        const infoHash = bytes20(19)
        const swarmsListed = Effect.map(rawGet(server.scrapeUrl), ({ body }) => {
          const decoded = Bencode.decode(body)
          assert.isTrue(Either.isRight(decoded))
          const files =
            Either.isRight(decoded) && Bencode.isDict(decoded.right) ? decoded.right["files"] : undefined
          return Bencode.isDict(files) ? Object.keys(files).length : -1
        })
        yield* client.announce(server.url, request(bytes20(17), infoHash, 1))
        assert.strictEqual(yield* swarmsListed, 1)
        // purges at 1 s and 2 s find the peer alive (it expires after 2 s)
        yield* TestClock.adjust("2 seconds")
        assert.strictEqual(yield* swarmsListed, 1)
        // the purge at 3 s drops the peer, then its empty swarm
        yield* TestClock.adjust("1 second")
        assert.strictEqual(yield* swarmsListed, 0)
      }),
    10_000
  )

  it.scopedLive(
    "HTTP errors, refused connections and announce URLs with a query string",
    () =>
      Effect.gen(function* () {
        const { client, server } = yield* setup()
        const notFound = yield* client
          .announce(`http://127.0.0.1:${server.port}/nope`, request(bytes20(1), bytes20(2), 1))
          .pipe(Effect.flip)
        assert.strictEqual(notFound.reason, "Http")
        assert.strictEqual(notFound.status, 404)
        // a private tracker's passkey in the query: the parameters are appended with &
        const withQuery = yield* client.announce(
          `${server.url}?passkey=abc`,
          request(bytes20(1), bytes20(2), 1)
        )
        assert.deepStrictEqual(withQuery.peers, [])
        const refused = yield* client
          .announce("http://127.0.0.1:1/announce", request(bytes20(1), bytes20(2), 1))
          .pipe(Effect.flip)
        assert.strictEqual(refused.reason, "Network")
        const unsupported = yield* client
          .announce("wss://tracker.example/announce", request(bytes20(1), bytes20(2), 1))
          .pipe(Effect.flip)
        assert.strictEqual(unsupported.reason, "Unsupported")
      }),
    10_000
  )

  it.scopedLive(
    "the server closes with its scope",
    () =>
      Effect.gen(function* () {
        const port = yield* Effect.scoped(
          Effect.map(EmbeddedTracker.make({ host: "127.0.0.1" }), (s) => s.port)
        )
        const client = yield* Tracker.make()
        const error = yield* client
          .announce(`http://127.0.0.1:${port}/announce`, request(bytes20(1), bytes20(2), 1))
          .pipe(Effect.flip)
        assert.strictEqual(error.reason, "Network")
      }),
    10_000
  )
})

describe("Announcer", () => {
  it.scopedLive(
    "tries the tier in order, promotes the tracker that answers, delivers peers, sends completed and stopped",
    () =>
      Effect.gen(function* () {
        const { client, server } = yield* setup()
        const infoHash = bytes20(20)
        // a peer already in the swarm
        yield* client.announce(server.url, request(bytes20(21), infoHash, 5555))
        const dead = "http://127.0.0.1:1/announce"
        let left = 100
        const events: Array<string> = []
        const recording: Tracker.TrackerService = {
          ...client,
          announce: (url, req) => {
            events.push(`${url === dead ? "dead" : "live"}:${req.event ?? "none"}`)
            return client.announce(url, req)
          }
        }
        const peerId = bytes20(22)
        yield* Effect.scoped(
          Effect.gen(function* () {
            const announcer = yield* Tracker.makeAnnouncer(recording, {
              tiers: [[dead, server.url]],
              shuffle: false,
              infoHash,
              peerId,
              port: 6000,
              progress: Effect.sync(() => ({ uploaded: 0, downloaded: 100 - left, left }))
            })
            const peer = yield* Queue.take(announcer.peers)
            assert.deepStrictEqual(peer, { ip: "127.0.0.1", port: 5555 })
            const state = yield* announcer.state
            assert.deepStrictEqual(state.tiers, [[server.url, dead]])
            assert.strictEqual(state.nextEvent, "none")
            assert.isTrue(Option.isSome(state.last))
            const swarm = yield* server.swarm(infoHash)
            assert.strictEqual(swarm.length, 2)

            left = 0
            yield* announcer.completed
            // wait for the completed announce to land
            for (
              let i = 0;
              i < 100 && (yield* server.swarm(infoHash)).every((p) => p.left !== 0 || p.port !== 6000);
              i++
            ) {
              yield* Effect.sleep("20 millis")
            }
            const seeder = (yield* server.swarm(infoHash)).find((p) => p.port === 6000)
            assert.strictEqual(seeder?.left, 0)
          })
        )
        // scope closed: stopped was sent to the tracker that answered
        const swarm = yield* server.swarm(infoHash)
        assert.deepStrictEqual(
          swarm.map((p) => p.port),
          [5555]
        )
        assert.deepStrictEqual(events, ["dead:started", "live:started", "live:completed", "live:stopped"])
      }),
    15_000
  )

  it.scopedLive(
    "retries with backoff while every tracker fails",
    () =>
      Effect.gen(function* () {
        const client = yield* Tracker.make({
          udpTimeout: "20 millis",
          udpMaxRetransmits: 0,
          udpBindAddress: "127.0.0.1"
        })
        const failures: Array<number> = []
        const announcer = yield* Tracker.makeAnnouncer(client, {
          tiers: [["http://127.0.0.1:1/announce"], ["udp://127.0.0.1:1/announce"]],
          infoHash: bytes20(30),
          peerId: bytes20(31),
          port: 1,
          retryDelay: "50 millis",
          progress: Effect.succeed({ uploaded: 0, downloaded: 0, left: 1 }),
          onFailure: (errors) => Effect.sync(() => failures.push(errors.length))
        })
        const start = Date.now()
        while ((yield* announcer.state).failures < 3 && Date.now() - start < 5000)
          yield* Effect.sleep("10 millis")
        const elapsed = Date.now() - start
        const state = yield* announcer.state
        assert.strictEqual(state.failures, 3)
        // three rounds are separated by backoff waits of 50 and 100 ms
        assert.isAtLeast(elapsed, 140)
        assert.strictEqual(state.nextEvent, "started")
        assert.strictEqual(failures[0], 2)
        yield* announcer.stop
      }),
    10_000
  )

  it.scopedLive(
    "works from the layers: startAnnouncer, then stop sends stopped",
    () =>
      Effect.gen(function* () {
        const server = yield* EmbeddedTracker.EmbeddedTracker
        const infoHash = bytes20(40)
        const announcer = yield* Tracker.startAnnouncer({
          tiers: [[server.url]],
          infoHash,
          peerId: bytes20(41),
          port: 4040,
          progress: Effect.succeed({ uploaded: 0, downloaded: 0, left: 0 })
        })
        for (let i = 0; i < 100 && (yield* announcer.state).announces === 0; i++)
          yield* Effect.sleep("10 millis")
        assert.strictEqual((yield* server.swarm(infoHash)).length, 1)
        const direct = yield* Tracker.announce(server.url, request(bytes20(42), infoHash, 4041))
        assert.deepStrictEqual(direct.peers, [{ ip: "127.0.0.1", port: 4040 }])
        yield* announcer.stop
        yield* announcer.stop
        assert.deepStrictEqual(
          (yield* server.swarm(infoHash)).map((p) => p.port),
          [4041]
        )
      }).pipe(Effect.provide(Layer.merge(Tracker.layer(), EmbeddedTracker.layer({ host: "127.0.0.1" })))),
    10_000
  )
})
