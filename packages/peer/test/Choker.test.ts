import { assert, describe, it } from "@effect/vitest"
import { Effect, TestClock } from "effect"
import * as Choker from "../src/internal/choker.js"

/** A peer as the choker sees it, logging the messages it would send. */
class Peer implements Choker.Chokeable {
  amChoking = true
  closed = false
  readonly sent: Array<"choke" | "unchoke"> = []
  constructor(readonly name: string) {}
  readonly choke = () => {
    this.amChoking = true
    this.sent.push("choke")
  }
  readonly unchoke = () => {
    this.amChoking = false
    this.sent.push("unchoke")
  }
}

const peers = (n: number) => Array.from({ length: n }, (_, i) => new Peer(`p${i}`))
const unchoked = (ps: ReadonlyArray<Peer>) => ps.filter((p) => !p.amChoking).map((p) => p.name)

describe("Choker", () => {
  it.scoped("unlimited slots: every interested peer is unchoked and stays so", () =>
    Effect.gen(function* () {
      const choker = yield* Choker.make<Peer>(Infinity)
      const ps = peers(3)
      for (const p of ps) choker.interested(p)
      assert.deepStrictEqual(unchoked(ps), ["p0", "p1", "p2"])
      choker.notInterested(ps[0]!)
      assert.deepStrictEqual(unchoked(ps), ["p0", "p1", "p2"], "not choked on losing interest")
      yield* TestClock.adjust("5 minutes")
      assert.deepStrictEqual(unchoked(ps), ["p0", "p1", "p2"])
      assert.deepStrictEqual(ps[1]!.sent, ["unchoke"])
    })
  )

  it.scoped("slots: first come first served; a slot freed by an uninterested or gone peer passes on", () =>
    Effect.gen(function* () {
      const choker = yield* Choker.make<Peer>(1)
      const ps = peers(3)
      for (const p of ps) choker.interested(p)
      choker.interested(ps[1]!)
      assert.deepStrictEqual(unchoked(ps), ["p0"])
      assert.deepStrictEqual(
        choker.queue.map((p) => p.name),
        ["p1", "p2"],
        "queued once each"
      )
      choker.notInterested(ps[0]!)
      assert.deepStrictEqual(unchoked(ps), ["p1"])
      assert.deepStrictEqual(ps[0]!.sent, ["unchoke", "choke"])
      ps[1]!.closed = true
      choker.removed(ps[1]!)
      assert.deepStrictEqual(unchoked(ps.filter((p) => !p.closed)), ["p2"])
      // A waiting peer that loses interest leaves the queue.
      const late = new Peer("late")
      choker.interested(late)
      choker.notInterested(late)
      assert.deepStrictEqual(choker.queue, [])
      assert.deepStrictEqual(late.sent, [])
    })
  )

  it.scoped("slots rotate every period to the peer that has waited longest", () =>
    Effect.gen(function* () {
      const choker = yield* Choker.make<Peer>(2)
      const ps = peers(3)
      for (const p of ps) choker.interested(p)
      assert.deepStrictEqual(unchoked(ps), ["p0", "p1"])
      yield* TestClock.adjust(Choker.ROTATION)
      // p0 held its slot longest (tie with p1, first in): it goes to the back of the queue.
      assert.deepStrictEqual(unchoked(ps), ["p1", "p2"])
      assert.deepStrictEqual(
        choker.queue.map((p) => p.name),
        ["p0"]
      )
      yield* TestClock.adjust(Choker.ROTATION)
      assert.deepStrictEqual(unchoked(ps), ["p0", "p2"])
      assert.strictEqual(choker.unchoked, 2)
    })
  )

  it.scoped("slots rotate only while someone waits; a peer rotated out gets its turn back", () =>
    Effect.gen(function* () {
      const choker = yield* Choker.make<Peer>(1)
      const ps = peers(2)
      choker.interested(ps[0]!)
      yield* TestClock.adjust("9 seconds")
      choker.interested(ps[1]!)
      yield* TestClock.adjust("1 second")
      assert.deepStrictEqual(unchoked(ps), ["p1"], "p0 held it a full period")
      yield* TestClock.adjust("10 seconds")
      assert.deepStrictEqual(unchoked(ps), ["p0"])
      choker.notInterested(ps[1]!)
      yield* TestClock.adjust("1 minute")
      assert.deepStrictEqual(unchoked(ps), ["p0"])
      assert.deepStrictEqual(ps[0]!.sent, ["unchoke", "choke", "unchoke"])
    })
  )

  it("optimistic unchoke: every third rotation one more waiting peer is unchoked, then moves on", () => {
    let now = 0
    const choker = new Choker.Choker<Peer>(1, () => now, 10_000)
    const ps = peers(4)
    for (const p of ps) choker.interested(p)
    // Slots held for less than a period do not rotate: only the optimistic slot moves.
    choker.rotate()
    choker.rotate()
    assert.deepStrictEqual(unchoked(ps), ["p0"])
    choker.rotate()
    assert.strictEqual(choker.optimistic?.name, "p1")
    assert.deepStrictEqual(unchoked(ps), ["p0", "p1"])
    assert.strictEqual(choker.unchoked, 2)
    choker.rotate()
    choker.rotate()
    choker.rotate()
    assert.strictEqual(choker.optimistic?.name, "p2")
    assert.deepStrictEqual(unchoked(ps), ["p0", "p2"])
    assert.deepStrictEqual(
      choker.queue.map((p) => p.name),
      ["p3", "p1"]
    )
    // The optimistic peer losing interest frees only its own slot.
    choker.notInterested(ps[2]!)
    assert.isUndefined(choker.optimistic)
    assert.deepStrictEqual(unchoked(ps), ["p0"])
    // Once p0 has held its slot a whole period, the next rotation passes it on.
    now += 10_000
    choker.rotate()
    assert.deepStrictEqual(unchoked(ps), ["p3"])
  })
})
