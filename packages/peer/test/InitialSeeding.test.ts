import { assert, describe, it } from "@effect/vitest"
import { IN_TRANSIT_RETRY_MS, InitialSeeding, RETRY_MS, TAIL_SHARE } from "../src/internal/initialSeeding.js"
import { QUIET_MS } from "../src/internal/upload.js"

const peer = (id: number) => ({ id })
const everything = () => true

/** `pieces` pieces, all ours; `availability` is the swarm's count of peers having each. */
const make = (pieces: number) => {
  const availability = new Uint32Array(pieces)
  return { availability, seeding: new InitialSeeding<{ id: number }>(pieces, availability, everything) }
}

describe("InitialSeeding", () => {
  it("sends no piece twice to strict peers while some piece has not left", () => {
    const { seeding } = make(3)
    const a = peer(1)
    const b = peer(2)
    assert.isTrue(seeding.active)
    assert.isTrue(seeding.serve(a, 0, true, 0), "a piece that never left")
    assert.isTrue(seeding.serve(a, 0, true, 0), "the rest of it, to the same peer")
    assert.isFalse(seeding.serve(b, 0, true, 0), "b can get piece 0 from a")
    assert.isTrue(seeding.serve(b, 1, true, 0))
    assert.strictEqual(seeding.unsent, 1)
    assert.isTrue(seeding.serve(b, 2, true, 0), "the last piece leaves")
    assert.isFalse(seeding.active)
  })

  it("waits RETRY_MS from when the peer the piece went to has it, not from the first refusal", () => {
    const { availability, seeding } = make(2)
    const a = peer(1)
    const b = peer(2)
    assert.isTrue(seeding.serve(a, 0, true, 0))
    assert.isFalse(seeding.serve(b, 0, true, 1_000), "on its way to a")
    // The piece took longer than RETRY_MS to reach a over a slow shared link; a now has it.
    availability[0] = 1
    assert.isFalse(seeding.serve(b, 0, true, 1_000 + RETRY_MS + 500), "b can get it from a now")
    assert.isFalse(seeding.serve(b, 0, true, 1_000 + 2 * RETRY_MS), "still too soon to tell")
    assert.isTrue(seeding.serve(b, 0, true, 1_000 + 2 * RETRY_MS + 500), "b could not get it from a")
  })

  it("once every piece is out, still refuses a piece a connected peer has, until asked again", () => {
    const { availability, seeding } = make(2)
    const a = peer(1)
    const b = peer(2)
    seeding.serve(a, 0, true, 0)
    seeding.serve(a, 1, true, 0)
    assert.isFalse(seeding.active)
    availability[0] = 1 // a has piece 0 (its have came)
    assert.isFalse(seeding.serve(b, 0, true, 1_000), "a has it")
    assert.isFalse(seeding.serve(b, 0, true, 1_000), "the rest of the same batch")
    assert.isFalse(seeding.serve(b, 0, true, 1_000 + RETRY_MS - 1), "too soon to tell")
    assert.isTrue(seeding.serve(b, 0, true, 1_000 + RETRY_MS), "b could not get it from a")
    assert.isTrue(seeding.serve(b, 0, true, 1_000 + RETRY_MS), "and gets the rest of it")
  })

  it("in the tail, serves the peers furthest behind pieces others have, up to its share of the torrent", () => {
    const pieces = 100
    const { availability, seeding } = make(pieces)
    const a = peer(1)
    const b = peer(2)
    const budget = Math.floor(pieces * TAIL_SHARE)
    assert.isAbove(budget, 0)
    assert.isTrue(seeding.serve(a, 0, true, 0))
    availability[0] = 1
    assert.isFalse(seeding.serve(b, 0, true, 0, true), "not before every piece is out, even to a peer behind")
    for (let i = 1; i < pieces; i++) seeding.serve(a, i, true, 0)
    assert.isFalse(seeding.active)
    availability.fill(1)
    assert.isFalse(seeding.serve(b, 1, true, 1_000), "not behind: refused")
    assert.strictEqual(seeding.tail, budget, "a refusal costs nothing")
    assert.isTrue(seeding.serve(b, 1, true, 1_000, true), "behind: served")
    assert.isTrue(seeding.serve(b, 1, true, 1_000, false), "the rest of that piece, behind or not")
    assert.strictEqual(seeding.tail, budget - 1, "one piece sent again")
    for (let i = 2; seeding.tail > 0; i++) assert.isTrue(seeding.serve(b, i, true, 1_000, true))
    assert.isFalse(seeding.serve(b, 50, true, 1_000, true), "the share is spent: refused as before")
    assert.isTrue(seeding.serve(b, 50, true, 1_000 + RETRY_MS), "and served when asked again, as before")
  })

  it("refuses a piece still on its way to a connected peer for longer, before and after every piece is out", () => {
    const { availability, seeding } = make(3)
    const a = peer(1)
    const b = peer(2)
    assert.isTrue(seeding.serve(a, 0, true, 0))
    assert.isFalse(seeding.serve(b, 0, true, 1_000), "a is getting it")
    assert.isFalse(seeding.serve(b, 0, true, 1_000 + RETRY_MS), "still on its way to a: not twice")
    assert.isFalse(seeding.serve(b, 0, true, 1_000 + IN_TRANSIT_RETRY_MS - 1))
    assert.isTrue(seeding.serve(b, 0, true, 1_000 + IN_TRANSIT_RETRY_MS), "a got nowhere with it")
    // Once a has a piece, a refused peer asking again RETRY_MS later could not get it from a.
    seeding.serve(a, 1, true, 0)
    seeding.serve(a, 2, true, 0)
    assert.isFalse(seeding.active)
    assert.isFalse(seeding.serve(b, 1, true, 2_000))
    assert.isFalse(seeding.serve(b, 1, true, 2_000 + RETRY_MS), "in transit")
    availability[1] = 1
    // a has it now: b's wait for it from a starts now, not at b's first refusal (a did not have
    // it then: sending it again at once was the repeat a slow shared link made).
    assert.isFalse(seeding.serve(b, 1, true, 2_000 + RETRY_MS), "a has it: b can get it from a")
    assert.isTrue(seeding.serve(b, 1, true, 2_000 + 2 * RETRY_MS), "b asked again: not from a")
  })

  it("waits for a piece on its way to another client only RETRY_MS: it may never pass it on", () => {
    const { seeding } = make(3)
    const stuck = peer(1)
    const b = peer(2)
    // A client that is not ezio (here one that asks and never reads) got the piece first.
    assert.isTrue(seeding.serve(stuck, 0, false, 0))
    assert.isFalse(seeding.serve(b, 0, true, 1_000), "it may still pass it on")
    assert.isFalse(seeding.serve(b, 0, true, 1_000 + RETRY_MS - 1))
    assert.isTrue(seeding.serve(b, 0, true, 1_000 + RETRY_MS), "not the 30 s an ezio peer is given")
  })

  it("serves a piece again once its holders have left, and peers that do not play along always", () => {
    const { availability, seeding } = make(3)
    const a = peer(1)
    const b = peer(2)
    const other = peer(3)
    seeding.serve(a, 0, true, 0)
    assert.isTrue(seeding.serve(other, 0, false, 0), "a client that knows nothing of it")
    assert.isFalse(seeding.serve(b, 0, true, 0))
    seeding.removed(a)
    assert.isFalse(seeding.serve(b, 0, true, 0), "the other client still holds it")
    seeding.removed(other)
    assert.isTrue(seeding.serve(b, 0, true, 0), "nobody connected holds it")
    // A peer that has a piece (its bitfield or a have) holds it too.
    seeding.serve(a, 1, true, 0)
    seeding.removed(a)
    availability[1] = 1
    assert.isFalse(seeding.serve(b, 1, true, 0))
    availability[1] = 0
    assert.isTrue(seeding.serve(b, 1, true, 0))
  })

  it("a piece is sent elsewhere only while a peer it went to is connected, or a peer has it", () => {
    const { availability, seeding } = make(3)
    const a = peer(1)
    const b = peer(2)
    assert.isFalse(seeding.sentElsewhere(0, b), "it never left")
    seeding.serve(a, 0, false, 0)
    seeding.serve(a, 1, false, 0)
    assert.isFalse(seeding.sentElsewhere(0, a))
    assert.isTrue(seeding.sentElsewhere(0, b), "it went to a")
    seeding.removed(a)
    assert.isFalse(seeding.sentElsewhere(0, b), "a left with it: it is nowhere")
    availability[1] = 1
    assert.isTrue(seeding.sentElsewhere(1, b), "a left, but a connected peer has it")
  })

  it("a piece that went only to a client silent past QUIET_MS, owed nothing, is nowhere", () => {
    const { seeding } = make(2)
    const quiet = { id: 1, lastHeard: 0, owed: false }
    const b = peer(2)
    seeding.serve(quiet, 0, false, 0)
    assert.isTrue(seeding.sentElsewhere(0, b, QUIET_MS - 1), "heard from lately: it may be reading")
    assert.isFalse(seeding.sentElsewhere(0, b, QUIET_MS), "silent, nothing owed: it does not read")
    assert.isTrue(seeding.sentElsewhere(0, b), "without the time, as before")
    quiet.owed = true
    assert.isTrue(seeding.sentElsewhere(0, b, 10 * QUIET_MS), "waiting on us (our upload limit), not silent")
  })

  it("suggests unsent pieces, each to one peer, topped up as they go", () => {
    const { seeding } = make(6)
    const a = peer(1)
    const b = peer(2)
    const toA = seeding.suggest(a, 2, everything)
    const toB = seeding.suggest(b, 2, everything)
    assert.strictEqual(toA.length, 2)
    assert.strictEqual(toB.length, 2)
    assert.strictEqual(new Set([...toA, ...toB]).size, 4, "no piece suggested to two peers")
    assert.deepStrictEqual(seeding.suggest(a, 2, everything), [], "a still has two")
    seeding.serve(a, toA[0]!, true, 0)
    const more = seeding.suggest(a, 2, everything)
    assert.strictEqual(more.length, 1)
    assert.notInclude([...toA, ...toB], more[0])
    // b leaves: its suggestions are free for a; a piece a has is never suggested to it.
    seeding.removed(b)
    const rest = seeding.suggest(a, 6, (piece) => piece !== toB[0])
    assert.include(rest, toB[1])
    assert.notInclude(rest, toB[0])
  })

  it("never waits for pieces it does not have", () => {
    const seeding = new InitialSeeding<{ id: number }>(3, new Uint32Array(3), (piece) => piece !== 2)
    assert.strictEqual(seeding.unsent, 2)
    seeding.serve(peer(1), 0, true, 0)
    seeding.serve(peer(1), 1, true, 0)
    assert.isFalse(seeding.active)
    assert.deepStrictEqual(seeding.suggest(peer(2), 4, everything), [])
  })
})
