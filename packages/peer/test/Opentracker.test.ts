/**
 * Interop with Debian's opentracker (HTTP and UDP). Debian builds it with WANT_ACCESSLIST_WHITE,
 * so it only serves info-hashes listed (40 hex characters a line) in its whitelist file.
 */
import { assert, describe, it } from "@effect/vitest"
import { Effect, Schedule } from "effect"
import * as Tracker from "../src/Tracker.js"
import { OPENTRACKER, hasOpentracker as available, opentracker } from "@ezio/test-support/opentracker"
import { bytes20, request } from "./trackerSupport.js"

const hex = (b: Uint8Array) => Buffer.from(b).toString("hex")

describe(
  available ? "opentracker interop" : `opentracker interop (skipped: ${OPENTRACKER} is not installed)`,
  () => {
    it.scopedLive.skipIf(!available)(
      "announces over HTTP and UDP from two peer ids and each sees the other",
      () =>
        Effect.gen(function* () {
          const httpHash = bytes20(1)
          const udpHash = bytes20(2)
          const { port, stderr } = yield* opentracker([httpHash, udpHash])
          const client = yield* Tracker.make({
            httpTimeout: "2 seconds",
            udpTimeout: "500 millis",
            udpMaxRetransmits: 2,
            udpBindAddress: "127.0.0.1"
          })
          const httpUrl = `http://127.0.0.1:${port}/announce`
          const udpUrl = `udp://127.0.0.1:${port}/announce`
          const a = bytes20(10)
          const b = bytes20(11)

          // wait until it listens
          yield* client.announce(httpUrl, request(a, httpHash, 7001, { event: "started" })).pipe(
            Effect.retry({ schedule: Schedule.spaced("100 millis"), times: 50 }),
            Effect.tapError(() => Effect.logError(stderr()))
          )

          // HTTP
          const httpB = yield* client.announce(httpUrl, request(b, httpHash, 7002, { event: "started" }))
          assert.deepInclude(httpB.peers, { ip: "127.0.0.1", port: 7001 })
          assert.isAbove(httpB.interval, 0)
          const httpA = yield* client.announce(httpUrl, request(a, httpHash, 7001))
          assert.deepInclude(httpA.peers, { ip: "127.0.0.1", port: 7002 })
          yield* client.announce(httpUrl, request(b, httpHash, 7002, { event: "stopped" }))
          const afterStop = yield* client.announce(httpUrl, request(a, httpHash, 7001))
          assert.notDeepInclude(afterStop.peers, { ip: "127.0.0.1", port: 7002 })

          // UDP
          yield* client.announce(udpUrl, request(a, udpHash, 7101, { event: "started" }))
          const udpB = yield* client.announce(
            udpUrl,
            request(b, udpHash, 7102, { event: "started", left: 0 })
          )
          assert.deepInclude(udpB.peers, { ip: "127.0.0.1", port: 7101 })
          const udpA = yield* client.announce(udpUrl, request(a, udpHash, 7101))
          assert.deepInclude(udpA.peers, { ip: "127.0.0.1", port: 7102 })
          assert.strictEqual(udpA.complete, 1)

          // scrape, both ways
          const httpScrape = yield* client.scrape(httpUrl, [udpHash])
          assert.strictEqual(httpScrape.get(hex(udpHash))?.complete, 1)
          const udpScrape = yield* client.scrape(udpUrl, [udpHash])
          assert.strictEqual(udpScrape.get(hex(udpHash))?.complete, 1)
        }),
      30_000
    )

    it.scopedLive.skipIf(!available)(
      "a hash missing from the whitelist is refused with typed errors (HTTP: opentracker's failure reason)",
      () =>
        Effect.gen(function* () {
          const { port } = yield* opentracker([bytes20(1)])
          const client = yield* Tracker.make({
            httpTimeout: "2 seconds",
            udpTimeout: "500 millis",
            udpBindAddress: "127.0.0.1"
          })
          const error = yield* client
            .announce(`http://127.0.0.1:${port}/announce`, request(bytes20(10), bytes20(3), 7001))
            .pipe(
              Effect.retry({
                schedule: Schedule.spaced("100 millis"),
                times: 50,
                while: (e) => e.reason !== "Failure"
              }),
              Effect.flip
            )
          assert.strictEqual(error.reason, "Failure")
          assert.match(error.failure ?? "", /not authorized/)
          const udpError = yield* client
            .announce(`udp://127.0.0.1:${port}/announce`, request(bytes20(10), bytes20(3), 7001))
            .pipe(Effect.flip)
          // over UDP, opentracker answers an off-whitelist announce with a bare 8-byte header
          assert.strictEqual(udpError.reason, "Malformed")
          assert.match(udpError.message, /refused/)
        }),
      30_000
    )
  }
)
