import { assert, describe, it } from "@effect/vitest"
import { Effect, TestClock } from "effect"
import * as Dialer from "../src/internal/dialer.js"

/** A dialer on the TestClock whose dials are recorded; the test reports their outcomes. */
const setup = (options: Partial<Dialer.DialerOptions> = {}) =>
  Effect.gen(function* () {
    const clock = yield* Effect.clock
    const dials: Array<string> = []
    const host = { connections: 0, unwanted: new Set<string>() }
    const dialer = new Dialer.Dialer(
      { maxPeers: 10, dialLimit: 10, ...options },
      {
        dial: (_host, _port, address) => void dials.push(address),
        connections: () => host.connections,
        wanted: (address) => !host.unwanted.has(address)
      },
      () => clock.unsafeCurrentTimeMillis()
    )
    yield* Effect.forkScoped(Dialer.run(dialer))
    // Lets the driver fiber run after a change.
    const settle = Effect.zipRight(TestClock.adjust("1 millis"), Effect.yieldNow())
    return { dialer, dials, host, settle }
  })

describe("Dialer", () => {
  it.scoped("dials a new peer at once, then again after 1 s, 2 s, 4 s … up to 60 s while it fails", () =>
    Effect.gen(function* () {
      const { dialer, dials, settle } = yield* setup()
      const a = dialer.add("10.0.0.1", 6881, "manual")!
      yield* settle
      assert.deepStrictEqual(dials, ["10.0.0.1:6881"])
      // Each wait is the backoff to the millisecond, doubling to the 60 s cap.
      for (const wait of [1000, 2000, 4000, 8000, 16000, 32000, 60000, 60000, 60000]) {
        dialer.failed(a)
        const before = dials.length
        yield* TestClock.adjust(wait - 1)
        assert.strictEqual(dials.length, before, `not before ${wait} ms`)
        yield* settle
        assert.strictEqual(dials.length, before + 1, `again after ${wait} ms`)
      }
    })
  )

  it.scoped("a successful handshake resets the backoff: a lost peer is dialled again after 1 s", () =>
    Effect.gen(function* () {
      const { dialer, dials, settle } = yield* setup()
      const a = dialer.add("10.0.0.1", 6881, "tracker")!
      yield* settle
      dialer.failed(a)
      yield* TestClock.adjust("1 second")
      dialer.failed(a)
      yield* TestClock.adjust("2 seconds")
      assert.strictEqual(dials.length, 3)
      assert.strictEqual(dialer.peer("10.0.0.1", 6881)!.backoff, 4000)
      dialer.opened(a)
      dialer.handshaken(a, "id-a")
      assert.strictEqual(dialer.peer("10.0.0.1", 6881)!.backoff, 1000)
      // While connected it is never dialled.
      yield* TestClock.adjust("2 minutes")
      assert.strictEqual(dials.length, 3)
      dialer.lost(a)
      yield* TestClock.adjust("999 millis")
      assert.strictEqual(dials.length, 3)
      yield* TestClock.adjust("1 millis")
      yield* settle
      assert.strictEqual(dials.length, 4)
    })
  )

  it.scoped("never two connections to one peer: not by address, not by peer id, not to ourselves", () =>
    Effect.gen(function* () {
      const { dialer, dials, settle } = yield* setup()
      const a = dialer.add("10.0.0.1", 6881, "tracker")!
      // Heard of again from another source while the dial is in flight: no second dial.
      dialer.add("10.0.0.1", 6881, "pex")
      yield* settle
      dialer.add("10.0.0.1", 6881, "pex")
      yield* settle
      assert.deepStrictEqual(dials, [a])
      dialer.opened(a)
      dialer.handshaken(a, "peer-a")
      dialer.peerConnected("peer-a")
      // The same peer under another address (it also dialled us, giving its port): not dialled
      // while peer-a is connected, dialled once it leaves.
      const alias = dialer.add("10.0.0.2", 7000, "incoming")!
      dialer.identify(alias, "peer-a")
      yield* settle
      yield* TestClock.adjust("10 seconds")
      assert.deepStrictEqual(dials, [a])
      dialer.peerDisconnected("peer-a")
      dialer.lost(a)
      yield* settle
      assert.deepStrictEqual(dials, [a, alias])
      // An address that turned out to be us is dropped and never dialled again.
      const me = dialer.add("127.0.0.1", 6881, "pex")!
      yield* settle
      assert.deepStrictEqual(dials, [a, alias, me])
      dialer.self(me)
      assert.strictEqual(dialer.add("127.0.0.1", 6881, "tracker"), undefined)
      yield* TestClock.adjust("5 minutes")
      assert.strictEqual(dials.filter((d) => d === me).length, 1)
      assert.strictEqual(dialer.peer("127.0.0.1", 6881), undefined)
    })
  )

  it.scoped("dials up to the limit, counting dials in flight, and the rest as slots free up", () =>
    Effect.gen(function* () {
      const { dialer, dials, host, settle } = yield* setup({ maxPeers: 5, dialLimit: 4 })
      host.connections = 1 // one peer dialled us
      const keys = Array.from({ length: 6 }, (_, i) => dialer.add(`10.0.1.${i}`, 6881, "tracker")!)
      yield* settle
      assert.strictEqual(dials.length, 3)
      assert.strictEqual(dialer.dialing, 3)
      // One connects (now a connection of the swarm's): still no room.
      dialer.opened(keys[0]!)
      host.connections = 2
      dialer.handshaken(keys[0]!, "p0")
      yield* settle
      assert.strictEqual(dials.length, 3)
      // One fails: its slot goes to the next peer, not to it (it waits out its backoff).
      dialer.failed(keys[1]!)
      yield* settle
      assert.deepStrictEqual(dials, [keys[0], keys[1], keys[2], keys[3]])
      // The incoming peer leaves: the swarm pokes the dialer, which fills the slot.
      host.connections = 1
      dialer.poke()
      yield* settle
      assert.deepStrictEqual(dials, [keys[0], keys[1], keys[2], keys[3], keys[4]])
      // A peer the swarm does not want now (a seed while we seed) is skipped.
      host.unwanted.add(keys[5]!)
      dialer.failed(keys[2]!)
      yield* TestClock.adjust("10 seconds")
      // The freed slot went to the first peer whose backoff ended (keys[1]), none to keys[5].
      assert.isFalse(dials.includes(keys[5]!))
      assert.deepStrictEqual(dials.slice(5), [keys[1]])
    })
  )

  it.scoped("keeps at most maxKnown peers, whatever PEX and trackers offer", () =>
    Effect.gen(function* () {
      const { dialer } = yield* setup({ maxPeers: 1, dialLimit: 1, maxKnown: 3 })
      for (let i = 0; i < 10; i++) dialer.add(`10.0.2.${i}`, 6881, "pex")
      assert.strictEqual(dialer.size, 3)
      assert.strictEqual(dialer.add("10.0.3.1", 0, "pex"), undefined)
    })
  )
})
