import * as Dgram from "node:dgram"
import { assert, describe, it } from "@effect/vitest"
import { Bencode } from "@ezio/torrent"
import { Clock, Duration, Effect, Either, FastCheck, Fiber, Queue, TestClock } from "effect"
import * as Tracker from "../src/Tracker.js"
import { bytes20, eventually, realSleep, request } from "./trackerSupport.js"

// ---------------------------------------------------------------------------------------------
// a tiny BEP 15 tracker
// ---------------------------------------------------------------------------------------------

interface UdpTrackerOptions {
  /** Drop this many packets of each action before answering. */
  readonly drop?: { readonly connect?: number; readonly announce?: number }
  /** Answer announces for this info-hash (hex) with action 3. */
  readonly refuse?: string
  /** Never answer anything. */
  readonly silent?: boolean
}

interface UdpTrackerLog {
  connects: number
  announces: number
  readonly events: Array<number>
  readonly ids: Array<string>
}

const PROTOCOL_ID = 0x41727101980n

const udpTracker = (options: UdpTrackerOptions = {}) =>
  Effect.acquireRelease(
    Effect.async<{ url: string; log: UdpTrackerLog; socket: Dgram.Socket }>((resume) => {
      const socket = Dgram.createSocket("udp4")
      const log: UdpTrackerLog = { connects: 0, announces: 0, events: [], ids: [] }
      const dropped = { connect: 0, announce: 0 }
      const connectionIds = new Set<string>()
      const swarms = new Map<string, Map<string, { ip: string; port: number }>>()
      socket.on("message", (msg, remote) => {
        if (options.silent) {
          log.connects++
          return
        }
        const reply = (b: Buffer) => socket.send(b, remote.port, remote.address)
        const action = msg.readUInt32BE(8)
        const tid = msg.readUInt32BE(12)
        if (action === 0 && msg.length >= 16 && msg.readBigUInt64BE(0) === PROTOCOL_ID) {
          log.connects++
          if (dropped.connect < (options.drop?.connect ?? 0)) {
            dropped.connect++
            return
          }
          const id = Buffer.alloc(8)
          id.writeUInt32BE((Math.random() * 0xffffffff) >>> 0, 0)
          id.writeUInt32BE(log.connects, 4)
          connectionIds.add(id.toString("hex"))
          const out = Buffer.alloc(16)
          out.writeUInt32BE(0, 0)
          out.writeUInt32BE(tid, 4)
          id.copy(out, 8)
          reply(out)
          return
        }
        if (action === 1 && msg.length >= 98) {
          log.announces++
          const connectionId = msg.subarray(0, 8).toString("hex")
          log.ids.push(connectionId)
          if (dropped.announce < (options.drop?.announce ?? 0)) {
            dropped.announce++
            return
          }
          const error = (text: string) => {
            const out = Buffer.concat([Buffer.alloc(8), Buffer.from(text)])
            out.writeUInt32BE(3, 0)
            out.writeUInt32BE(tid, 4)
            reply(out)
          }
          if (!connectionIds.has(connectionId)) return error("bad connection id")
          const infoHash = msg.subarray(16, 36).toString("hex")
          if (infoHash === options.refuse) return error("torrent not allowed here")
          const peerId = msg.subarray(36, 56).toString("hex")
          const event = msg.readUInt32BE(80)
          log.events.push(event)
          const port = msg.readUInt16BE(96)
          let swarm = swarms.get(infoHash)
          if (swarm === undefined) swarms.set(infoHash, (swarm = new Map()))
          if (event === 3) swarm.delete(peerId)
          else swarm.set(peerId, { ip: remote.address, port })
          const others = [...swarm].filter(([id]) => id !== peerId).map(([, p]) => p)
          const out = Buffer.alloc(20 + 6 * others.length)
          out.writeUInt32BE(1, 0)
          out.writeUInt32BE(tid, 4)
          out.writeUInt32BE(1800, 8)
          out.writeUInt32BE(others.length, 12)
          out.writeUInt32BE(0, 16)
          others.forEach((p, i) => {
            Buffer.from(p.ip.split(".").map(Number)).copy(out, 20 + 6 * i)
            out.writeUInt16BE(p.port, 24 + 6 * i)
          })
          reply(out)
          return
        }
        if (action === 2) {
          const n = (msg.length - 16) / 20
          const out = Buffer.alloc(8 + 12 * n)
          out.writeUInt32BE(2, 0)
          out.writeUInt32BE(tid, 4)
          for (let i = 0; i < n; i++) {
            const swarm = swarms.get(msg.subarray(16 + 20 * i, 36 + 20 * i).toString("hex"))
            out.writeUInt32BE(0, 8 + 12 * i)
            out.writeUInt32BE(0, 12 + 12 * i)
            out.writeUInt32BE(swarm?.size ?? 0, 16 + 12 * i)
          }
          reply(out)
        }
      })
      socket.bind(0, "127.0.0.1", () =>
        resume(Effect.succeed({ url: `udp://127.0.0.1:${socket.address().port}/announce`, log, socket }))
      )
    }),
    ({ socket }) =>
      Effect.sync(() => {
        try {
          socket.close()
        } catch {
          // closed by the test
        }
      })
  )

const udpClient = (udpTimeout: Duration.DurationInput = "100 millis", udpMaxRetransmits = 3) =>
  Tracker.make({ udpTimeout, udpMaxRetransmits, udpBindAddress: "127.0.0.1" })

describe("UDP tracker client (BEP 15)", () => {
  it.scopedLive(
    "connect + announce: two peers see each other, stopped is sent",
    () =>
      Effect.gen(function* () {
        const server = yield* udpTracker()
        const client = yield* udpClient()
        const infoHash = bytes20(1)
        const first = yield* client.announce(
          server.url,
          request(bytes20(2), infoHash, 6881, { event: "started" })
        )
        assert.deepStrictEqual(first.peers, [])
        assert.strictEqual(first.interval, 1800)
        const second = yield* client.announce(
          server.url,
          request(bytes20(3), infoHash, 6882, { event: "started" })
        )
        assert.deepStrictEqual(second.peers, [{ ip: "127.0.0.1", port: 6881 }])
        assert.strictEqual(second.incomplete, 1)
        const third = yield* client.announce(server.url, request(bytes20(2), infoHash, 6881))
        assert.deepStrictEqual(third.peers, [{ ip: "127.0.0.1", port: 6882 }])
        yield* client.announce(server.url, request(bytes20(3), infoHash, 6882, { event: "stopped" }))
        const fourth = yield* client.announce(
          server.url,
          request(bytes20(2), infoHash, 6881, { event: "completed" })
        )
        assert.deepStrictEqual(fourth.peers, [])
        assert.deepStrictEqual(server.log.events, [2, 2, 0, 3, 1])
        // one connection id, reused within its minute
        assert.strictEqual(server.log.connects, 1)
        assert.strictEqual(new Set(server.log.ids).size, 1)
        const scrape = yield* client.scrape(server.url, [infoHash])
        assert.strictEqual(scrape.get(Buffer.from(infoHash).toString("hex"))?.incomplete, 1)
      }),
    10_000
  )

  // on the TestClock (the sockets stay real): each retransmission waits exactly 100·2^n ms
  it.scoped(
    "a dropped connect and a dropped announce are retransmitted after 15·2^n (base shortened)",
    () =>
      Effect.gen(function* () {
        const server = yield* udpTracker({ drop: { connect: 1, announce: 1 } })
        const client = yield* udpClient("100 millis", 3)
        const fiber = yield* Effect.fork(
          client.announce(server.url, request(bytes20(2), bytes20(1), 1, { event: "started" }))
        )
        yield* eventually(() => server.log.connects === 1, "the first connect")
        // n = 0: the dropped connect is sent again after 100 ms, not before
        yield* TestClock.adjust("99 millis")
        yield* realSleep(30)
        assert.strictEqual(server.log.connects, 1)
        yield* TestClock.adjust("1 millis")
        yield* eventually(() => server.log.announces === 1, "the first announce")
        assert.strictEqual(server.log.connects, 2)
        // n = 1 (n grows with each timeout): the dropped announce is sent again after 200 ms
        yield* TestClock.adjust("199 millis")
        yield* realSleep(30)
        assert.strictEqual(server.log.announces, 1)
        yield* TestClock.adjust("1 millis")
        const response = yield* Fiber.join(fiber)
        assert.deepStrictEqual(response.peers, [])
        assert.strictEqual(server.log.connects, 2)
        assert.strictEqual(server.log.announces, 2)
      }),
    10_000
  )

  it.scoped(
    "gives up with a Timeout after the last retransmission",
    () =>
      Effect.gen(function* () {
        const server = yield* udpTracker({ silent: true })
        const client = yield* udpClient("30 millis", 2)
        const fiber = yield* Effect.fork(
          Effect.flip(client.announce(server.url, request(bytes20(2), bytes20(1), 1)))
        )
        // n = 0, 1, 2: waits of 30, 60 and 120 ms
        yield* eventually(() => server.log.connects === 1, "the first connect")
        yield* TestClock.adjust("30 millis")
        yield* eventually(() => server.log.connects === 2, "the second connect")
        yield* TestClock.adjust("60 millis")
        yield* eventually(() => server.log.connects === 3, "the third connect")
        yield* TestClock.adjust("120 millis")
        const error = yield* Fiber.join(fiber)
        assert.strictEqual(error.reason, "Timeout")
        assert.include(error.message, server.url)
        assert.strictEqual(server.log.connects, 3) // n = 0, 1, 2
      }),
    10_000
  )

  it.scopedLive(
    "error action 3 is a Failure with the tracker's message",
    () =>
      Effect.gen(function* () {
        const refused = bytes20(9)
        const server = yield* udpTracker({ refuse: Buffer.from(refused).toString("hex") })
        const client = yield* udpClient()
        const error = yield* client.announce(server.url, request(bytes20(2), refused, 1)).pipe(Effect.flip)
        assert.strictEqual(error._tag, "TrackerError")
        assert.strictEqual(error.reason, "Failure")
        assert.strictEqual(error.failure, "torrent not allowed here")
        assert.include(error.message, "torrent not allowed here")
      }),
    10_000
  )

  it.scopedLive(
    "a forgotten connection id is replaced by a fresh connect",
    () =>
      Effect.gen(function* () {
        const first = yield* udpTracker()
        const client = yield* udpClient()
        yield* client.announce(first.url, request(bytes20(2), bytes20(1), 1))
        // a new tracker process on the same port would not know our id: simulate by a second server
        // answering with action 3 to the stale id
        const port = Number(new URL(first.url).port)
        first.socket.close()
        const second = yield* Effect.acquireRelease(
          Effect.async<Dgram.Socket>((resume) => {
            const socket = Dgram.createSocket("udp4")
            let connected = false
            socket.on("message", (msg, remote) => {
              const action = msg.readUInt32BE(8)
              const tid = msg.readUInt32BE(12)
              const out = Buffer.alloc(action === 0 ? 16 : 20)
              if (action === 0) {
                connected = true
                out.writeUInt32BE(0, 0)
              } else if (!connected) {
                const err = Buffer.concat([Buffer.alloc(8), Buffer.from("Connection ID missmatch.")])
                err.writeUInt32BE(3, 0)
                err.writeUInt32BE(tid, 4)
                socket.send(err, remote.port, remote.address)
                return
              } else {
                out.writeUInt32BE(1, 0)
                out.writeUInt32BE(60, 8)
              }
              out.writeUInt32BE(tid, 4)
              socket.send(out, remote.port, remote.address)
            })
            socket.bind(port, "127.0.0.1", () => resume(Effect.succeed(socket)))
          }),
          (socket) => Effect.sync(() => socket.close())
        )
        assert.ok(second)
        const response = yield* client.announce(first.url, request(bytes20(2), bytes20(1), 1))
        assert.strictEqual(response.interval, 60)
      }),
    10_000
  )

  it.scopedLive(
    "bad URLs are Unsupported",
    () =>
      Effect.gen(function* () {
        const client = yield* udpClient()
        const error = yield* client
          .announce("udp://127.0.0.1/announce", request(bytes20(2), bytes20(1), 1))
          .pipe(Effect.flip)
        assert.strictEqual(error.reason, "Unsupported")
      }),
    10_000
  )
})

// ---------------------------------------------------------------------------------------------
// pure helpers
// ---------------------------------------------------------------------------------------------

describe("Tracker helpers", () => {
  it("percent-encodes info_hash and peer_id byte by byte, appending to an existing query", () => {
    const infoHash = Uint8Array.from([
      0x00, 0x12, 0x41, 0x7e, 0x20, 0xff, 0xc3, 0xa9, 0x2e, 0x2d, 0x5f, 0x26, 0x3d, 0x25, 0x2b, 0x80, 0x7f,
      0x61, 0x7a, 0x39
    ])
    const url = Tracker.announceUrl("http://t.example/announce?passkey=xyz", {
      ...request(new TextEncoder().encode("-EZ0100-abcdefghijkl"), infoHash, 6881),
      event: "started",
      numwant: 30,
      key: 0xdeadbeef
    })
    assert.isTrue(url.startsWith("http://t.example/announce?passkey=xyz&info_hash="))
    assert.include(url, "info_hash=%00%12A~%20%FF%C3%A9.-_%26%3D%25%2B%80%7Faz9&")
    assert.include(url, "peer_id=-EZ0100-abcdefghijkl&")
    assert.include(url, "&port=6881&uploaded=0&downloaded=0&left=1000")
    assert.include(url, "&compact=1")
    assert.include(url, "&event=started")
    assert.include(url, "&numwant=30")
    assert.include(url, "&key=DEADBEEF")
    assert.notInclude(Tracker.announceUrl("http://t/announce", request(bytes20(1), bytes20(2), 1)), "event=")
    assert.isTrue(
      Tracker.announceUrl("http://t/announce", request(bytes20(1), bytes20(2), 1)).startsWith(
        "http://t/announce?info_hash="
      )
    )
  })

  it.prop(
    "percent-encoding decodes back to the same bytes",
    { bytes: FastCheck.uint8Array({ maxLength: 40 }) },
    ({ bytes }) => {
      const encoded = Tracker.percentEncodeBytes(bytes)
      assert.match(encoded, /^[A-Za-z0-9\-._~%]*$/)
      const decoded = Buffer.from(
        decodeURIComponent(encoded.replace(/%([0-9A-F]{2})/g, "%25$1")).replace(
          /%([0-9A-F]{2})/g,
          (_, h: string) => String.fromCharCode(parseInt(h, 16))
        ),
        "latin1"
      )
      assert.deepStrictEqual(Array.from(decoded), Array.from(bytes))
    }
  )

  it("parses compact, dictionary and peers6 responses, warnings and failures", () => {
    const body = Bencode.encode({
      interval: 900,
      "min interval": 60,
      complete: 3,
      incomplete: 4,
      "warning message": Bencode.text("be nice"),
      peers: Uint8Array.from([10, 0, 0, 1, 0x1a, 0xe1, 192, 168, 1, 2, 0, 80]),
      peers6: Uint8Array.from([0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1, 0x1a, 0xe1])
    })
    const parsed = Tracker.parseAnnounceResponse("http://t/announce", body)
    assert.isTrue(Either.isRight(parsed))
    if (Either.isRight(parsed)) {
      assert.deepStrictEqual(parsed.right, {
        interval: 900,
        minInterval: 60,
        complete: 3,
        incomplete: 4,
        warning: "be nice",
        peers: [
          { ip: "10.0.0.1", port: 6881 },
          { ip: "192.168.1.2", port: 80 },
          { ip: "2001:db8::1", port: 6881 }
        ]
      })
    }
    const dicts = Tracker.parseAnnounceResponse(
      "http://t/announce",
      Bencode.encode({
        interval: 60,
        peers: [{ ip: Bencode.text("1.2.3.4"), port: 5, "peer id": bytes20(1) }]
      })
    )
    assert.isTrue(
      Either.isRight(dicts) &&
        dicts.right.peers[0]?.ip === "1.2.3.4" &&
        dicts.right.peers[0]?.peerId?.length === 20
    )
    const failure = Tracker.parseAnnounceResponse(
      "http://t/announce",
      Bencode.encode({ "failure reason": Bencode.text("go away") })
    )
    assert.isTrue(
      Either.isLeft(failure) && failure.left.reason === "Failure" && failure.left.failure === "go away"
    )
    const garbage = Tracker.parseAnnounceResponse("http://t/announce", new TextEncoder().encode("<html>"))
    assert.isTrue(Either.isLeft(garbage) && garbage.left.reason === "Malformed")
  })

  it.prop(
    "compact peers round-trip",
    {
      peers: FastCheck.array(
        FastCheck.record({ ip: FastCheck.ipV4(), port: FastCheck.integer({ min: 1, max: 65535 }) }),
        { maxLength: 20 }
      )
    },
    ({ peers }) => {
      const normalized = peers.map((p) => ({ ip: p.ip.split(".").map(Number).join("."), port: p.port }))
      assert.deepStrictEqual(
        Tracker.decodeCompactPeers(Tracker.encodeCompactPeers(normalized, 4), 4),
        normalized
      )
    }
  )

  it("shuffles tiers once and promotes a responding tracker to the front of its tier", () => {
    const tiers = Tracker.shuffleTiers([["a", "b", "c"], ["d"]], () => 0)
    assert.deepStrictEqual(tiers, [["b", "c", "a"], ["d"]])
    Tracker.promote(tiers, "a")
    assert.deepStrictEqual(tiers, [["a", "b", "c"], ["d"]])
    Tracker.promote(tiers, "d")
    assert.deepStrictEqual(tiers, [["a", "b", "c"], ["d"]])
  })
})

describe("Announcer start-up retries", () => {
  /** A tracker that refuses the first `down` announces (not listening yet), then answers; the Clock time of each. */
  const lateTracker = (down: number, times: Array<number>): Tracker.TrackerService => ({
    announce: (url) =>
      Effect.flatMap(Clock.currentTimeMillis, (now) => {
        times.push(now)
        return times.length <= down
          ? Effect.fail(new Tracker.TrackerError({ reason: "Network", url, detail: "connect ECONNREFUSED" }))
          : Effect.succeed({ interval: 60, peers: [{ ip: "10.0.0.2", port: 6881 }] })
      }),
    scrape: () => Effect.die("unused")
  })

  const options = (tracker: Tracker.TrackerService, startRetry?: Tracker.AnnouncerOptions["startRetry"]) =>
    Tracker.makeAnnouncer(tracker, {
      tiers: [["http://10.0.0.1:6969/announce"]],
      infoHash: bytes20(50),
      peerId: bytes20(51),
      port: 6881,
      retryDelay: "1 second",
      ...(startRetry === undefined ? {} : { startRetry }),
      progress: Effect.succeed({ uploaded: 0, downloaded: 0, left: 1 })
    })

  it.scoped(
    "until a tracker answers, `startRetry.rounds` retries `delay` apart, then the doubling backoff",
    () =>
      Effect.gen(function* () {
        const times: Array<number> = []
        const announcer = yield* options(lateTracker(100, times), { delay: "250 millis", rounds: 3 })
        yield* TestClock.adjust("10 seconds")
        // 3 quick retries, then 1 s, 2 s, 4 s: at 0, 250, 500, 750, 1750, 3750, 7750
        assert.deepStrictEqual(times, [0, 250, 500, 750, 1750, 3750, 7750])
        yield* announcer.stop
      })
  )

  it.scoped(
    "with `startHedge`, a first request left unanswered is sent again beside it, and that one's answer wins",
    () =>
      Effect.gen(function* () {
        const times: Array<number> = []
        // The first request hangs (its SYN lost), every later one answers.
        const lossy: Tracker.TrackerService = {
          announce: () =>
            Effect.flatMap(Clock.currentTimeMillis, (now) => {
              times.push(now)
              return times.length === 1
                ? Effect.never
                : Effect.succeed({ interval: 60, peers: [{ ip: "10.0.0.3", port: 6881 }] })
            }),
          scrape: () => Effect.die("unused")
        }
        const announcer = yield* Tracker.makeAnnouncer(lossy, {
          tiers: [["http://10.0.0.1:6969/announce"]],
          infoHash: bytes20(52),
          peerId: bytes20(53),
          port: 6881,
          startHedge: "300 millis",
          progress: Effect.succeed({ uploaded: 0, downloaded: 0, left: 1 })
        })
        yield* TestClock.adjust("1 second")
        assert.deepStrictEqual(times, [0, 300])
        assert.deepStrictEqual(yield* Queue.take(announcer.peers), { ip: "10.0.0.3", port: 6881 })
        assert.strictEqual((yield* announcer.state).announces, 1)
        yield* announcer.stop
      })
  )

  it.scoped("a tracker up 1.1 s late is reached at 1.25 s, not after the doubling waits (at 3 s)", () =>
    Effect.gen(function* () {
      const quick: Array<number> = []
      const a = yield* options(lateTracker(5, quick), { delay: "250 millis", rounds: 20 })
      const doubling: Array<number> = []
      const b = yield* options(lateTracker(2, doubling))
      yield* TestClock.adjust("5 seconds")
      assert.deepStrictEqual(quick, [0, 250, 500, 750, 1000, 1250])
      assert.deepStrictEqual(doubling, [0, 1000, 3000])
      assert.deepStrictEqual(yield* Queue.take(a.peers), { ip: "10.0.0.2", port: 6881 })
      assert.strictEqual((yield* a.state).announces, 1)
      assert.strictEqual((yield* b.state).announces, 1)
      yield* a.stop
      yield* b.stop
    })
  )
})
