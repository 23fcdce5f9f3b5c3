import { assert, describe, it } from "@effect/vitest"
import { Bitfield } from "@ezio/storage"
import { BLOCK, END_GAME_BLOCKS, Picker } from "../src/internal/picker.js"

const peer = (id: number) => ({ id })
const all = () => true
const only =
  (...pieces: Array<number>) =>
  (piece: number) =>
    pieces.includes(piece)

/** `pieces` pieces of `blocks` blocks each (the last one `lastBytes` long if given). */
const make = (pieces: number, blocks: number, lastBytes?: number) => {
  const pieceLength = blocks * BLOCK
  const total = lastBytes === undefined ? pieces * pieceLength : (pieces - 1) * pieceLength + lastBytes
  return new Picker<{ id: number }>(pieces, pieceLength, total, Bitfield.make(pieces), () => 0)
}

describe("Picker", () => {
  it("picks the rarest piece the peer has, then partial pieces before new ones", () => {
    const picker = make(4, 2)
    // Two peers with every piece, then haves for pieces 0, 2 and 3.
    const a = Bitfield.make(4)
    Bitfield.setAll(a)
    picker.addAvailability(a, 1)
    picker.addAvailability("all", 1)
    picker.addPiece(0)
    picker.addPiece(2)
    picker.addPiece(3)
    assert.deepStrictEqual([...picker.availability], [3, 2, 3, 3])
    // A peer with every piece leaves.
    picker.addAvailability("all", -1)
    assert.deepStrictEqual([...picker.availability], [2, 1, 2, 2])
    const first = picker.pick(peer(1), all, 1)
    assert.deepStrictEqual(first, [{ piece: 1, begin: 0, length: BLOCK }])
    // The rest of the partial piece 1 comes before any new piece, then the rarest left.
    const next = picker.pick(peer(2), all, 3)
    assert.deepStrictEqual(
      next.map((p) => [p.piece, p.begin]),
      [
        [1, BLOCK],
        [0, 0],
        [0, BLOCK]
      ]
    )
  })

  it("only picks pieces the peer has and pieces we lack", () => {
    const have = Bitfield.make(3)
    Bitfield.set(have, 0)
    const picker = new Picker<{ id: number }>(3, BLOCK, 3 * BLOCK, have, () => 0)
    assert.strictEqual(picker.count, 1)
    const picks = picker.pick(peer(1), only(0, 2), 5)
    assert.deepStrictEqual(picks, [{ piece: 2, begin: 0, length: BLOCK }])
  })

  it("sizes the last piece's last block, and marks pieces had", () => {
    const picker = make(2, 2, BLOCK + 100)
    assert.strictEqual(picker.pieceSize(1), BLOCK + 100)
    const picks = picker.pick(peer(1), only(1), 10)
    assert.deepStrictEqual(picks, [
      { piece: 1, begin: 0, length: BLOCK },
      { piece: 1, begin: BLOCK, length: 100 }
    ])
    assert.isDefined(picker.received(peer(1), 1, BLOCK, 100))
    assert.isUndefined(picker.received(peer(1), 1, 0, 100), "a block of the wrong length")
    assert.isDefined(picker.received(peer(1), 1, 0, BLOCK))
    assert.strictEqual(picker.partial.get(1)!.missing, 0)
    picker.markHave(1)
    assert.isTrue(picker.has(1))
    assert.isFalse(picker.complete)
    assert.isFalse(picker.partial.has(1))
    assert.isUndefined(picker.received(peer(1), 1, 0, BLOCK), "a piece we have")
  })

  it("end game: asks a second peer for blocks still outstanding, and names it for a cancel", () => {
    const picker = make(1, 2)
    const a = peer(1)
    const b = peer(2)
    assert.strictEqual(picker.pick(a, all, 10).length, 2)
    // Everything is requested: b gets the same blocks, once each.
    const dup = picker.pick(b, all, 10)
    assert.deepStrictEqual(
      dup.map((p) => p.begin),
      [0, BLOCK]
    )
    assert.deepStrictEqual(picker.pick(peer(3), all, 10), [], "no third requester")
    assert.deepStrictEqual(picker.pick(a, all, 10), [], "not the same peer twice")
    const requesters = picker.received(b, 0, 0, BLOCK)!
    assert.deepStrictEqual(
      requesters.filter((r) => r !== b),
      [a]
    )
    assert.isUndefined(picker.received(a, 0, 0, BLOCK), "the duplicate is not wanted")
  })

  it("abandoned, unreceived and reset blocks are picked again", () => {
    const picker = make(1, 3)
    const a = peer(1)
    assert.strictEqual(picker.pick(a, all, 3).length, 3)
    const state = picker.partial.get(0)!
    assert.strictEqual(state.unrequested, 0)
    picker.abandon(a, 0, BLOCK)
    assert.strictEqual(state.unrequested, 1)
    assert.deepStrictEqual(picker.pick(peer(2), all, 1), [{ piece: 0, begin: BLOCK, length: BLOCK }])
    picker.received(a, 0, 0, BLOCK)
    assert.strictEqual(state.missing, 2)
    picker.unreceive(0, 0)
    assert.strictEqual(state.missing, 3)
    assert.strictEqual(state.unrequested, 1)
    picker.reset(0)
    assert.strictEqual(state.unrequested, 3)
    assert.strictEqual(picker.pick(a, all, 5).length, 3)
  })

  it("block keys are unique across the torrent for pieces of any size, -1 off a block start", () => {
    // 128 MiB pieces: 8192 blocks each (a key of piece * 4096 + block would collide).
    const picker = new Picker(3, 8192 * BLOCK, 3 * 8192 * BLOCK, Bitfield.make(3))
    const keys = new Set<number>()
    for (let piece = 0; piece < 3; piece++)
      for (let b = 0; b < 8192; b++) keys.add(picker.blockKey(piece, b * BLOCK))
    assert.strictEqual(keys.size, 3 * 8192)
    assert.strictEqual(picker.blockKey(0, 8192 * BLOCK), -1, "past the piece's end")
    assert.strictEqual(picker.blockKey(0, 100), -1, "not a block start")
  })

  it("end game: no duplicate while any block of any missing piece is unrequested, even one this peer lacks", () => {
    const picker = make(2, 2)
    const a = peer(1)
    const b = peer(2)
    // a has both pieces and is asked for piece 0; b has piece 0 only.
    assert.strictEqual(picker.pick(a, only(0), 10).length, 2)
    assert.deepStrictEqual(picker.pick(b, only(0), 10), [], "piece 1 is not requested yet: no end game")
    assert.strictEqual(picker.pick(a, only(1), 1).length, 1)
    assert.deepStrictEqual(picker.pick(b, only(0), 10), [], "one block of piece 1 is still unrequested")
    assert.strictEqual(picker.pick(a, only(1), 1).length, 1)
    assert.isTrue(picker.allRequested)
    // Everything is requested: b may duplicate blocks of piece 0, the one it has.
    assert.deepStrictEqual(
      picker.pick(b, only(0), 10).map((p) => [p.piece, p.begin]),
      [
        [0, 0],
        [0, BLOCK]
      ]
    )
  })

  it("end game: only idle peers get duplicates, a few at a time", () => {
    const picker = make(1, 8)
    const a = peer(1)
    const b = peer(2)
    assert.strictEqual(picker.pick(a, all, 8).length, 8)
    assert.deepStrictEqual(picker.pick(b, all, 10, { busy: 1 }), [], "b still waits for a block")
    const dup = picker.pick(b, all, 10, { busy: 0 })
    assert.strictEqual(dup.length, END_GAME_BLOCKS)
    // The first copy in cancels the other request; the second copy is not wanted.
    assert.deepStrictEqual(picker.received(a, 0, 0, BLOCK), [a, b])
    assert.isUndefined(picker.received(b, 0, 0, BLOCK))
  })

  it("from a seed, only pieces no other peer has while there are such; suggested pieces first", () => {
    const picker = make(4, 1)
    // A seed (every piece) and a peer with pieces 0 and 1.
    picker.addAvailability("all", 1)
    const other = Bitfield.make(4)
    Bitfield.set(other, 0)
    Bitfield.set(other, 1)
    picker.addAvailability(other, 1)
    assert.strictEqual(picker.seeds, 1)
    const seed = peer(1)
    const picks = picker.pick(seed, all, 10, { seed: true })
    assert.deepStrictEqual(picks.map((p) => p.piece).sort(), [2, 3], "0 and 1 come from the other peer")
    assert.deepStrictEqual(picker.pick(seed, all, 10, { seed: true }), [], "2 and 3 are still on the way")
    // Once pieces 2 and 3 are in, the seed may serve the rest.
    for (const piece of [2, 3]) {
      picker.received(seed, piece, 0, BLOCK)
      picker.markHave(piece)
    }
    assert.deepStrictEqual(
      picker
        .pick(seed, all, 10, { seed: true })
        .map((p) => p.piece)
        .sort(),
      [0, 1]
    )

    const fresh = make(4, 1)
    fresh.addAvailability("all", 1)
    assert.deepStrictEqual(
      fresh.pick(seed, all, 2, { seed: true, suggested: [3, 1] }).map((p) => p.piece),
      [3, 1],
      "suggested pieces before the rarest"
    )
    const only = make(4, 1)
    only.addAvailability("all", 1)
    assert.deepStrictEqual(
      only.pick(seed, all, 4, { seed: true, suggested: [2], suggestedOnly: true }).map((p) => p.piece),
      [2],
      "from a seeder that serves only what it suggested, nothing else"
    )
  })

  it("from a seed, not the rest of a piece another peer has while some piece is on seeds only", () => {
    const picker = make(2, 4)
    // A seed (every piece) and a peer with piece 0; piece 1 is on the seed only.
    picker.addAvailability("all", 1)
    const other = Bitfield.make(2)
    Bitfield.set(other, 0)
    picker.addAvailability(other, 1)
    const seed = peer(1)
    const holder = peer(2)
    // Half of piece 0 is asked of the peer that has it.
    assert.deepStrictEqual(
      picker.pick(holder, only(0), 2).map((p) => [p.piece, p.begin]),
      [
        [0, 0],
        [0, BLOCK]
      ]
    )
    // The seed is asked for piece 1 only, not for the rest of piece 0 (an initial seeder refuses it).
    assert.deepStrictEqual(
      picker.pick(seed, all, 8, { seed: true }).map((p) => p.piece),
      [1, 1, 1, 1]
    )
    // Once piece 1 is in, nothing is on seeds only: the seed may finish piece 0.
    for (let b = 0; b < 4; b++) picker.received(seed, 1, b * BLOCK, BLOCK)
    picker.markHave(1)
    assert.deepStrictEqual(
      picker.pick(seed, all, 8, { seed: true }).map((p) => [p.piece, p.begin]),
      [
        [0, 2 * BLOCK],
        [0, 3 * BLOCK]
      ]
    )
  })

  it("counts a peer as a seed from a full bitfield or once its haves complete it", () => {
    const picker = make(2, 1)
    const bits = Bitfield.make(2)
    Bitfield.set(bits, 0)
    picker.addAvailability(bits, 1)
    assert.strictEqual(picker.seeds, 0)
    Bitfield.set(bits, 1)
    picker.addPiece(1, bits)
    assert.strictEqual(picker.seeds, 1)
    picker.addAvailability(bits, -1)
    assert.strictEqual(picker.seeds, 0)
    assert.deepStrictEqual([...picker.availability], [0, 0])
  })
})
