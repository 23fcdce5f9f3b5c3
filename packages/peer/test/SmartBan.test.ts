import { assert, describe, it } from "@effect/vitest"
import { blockDigests, SmartBan } from "../src/internal/smartBan.js"

const good = [new Uint8Array(16).fill(1), new Uint8Array(16).fill(2), new Uint8Array(16).fill(3)]
const bad = [new Uint8Array(16).fill(9), new Uint8Array(16).fill(9), new Uint8Array(16).fill(9)]
const goodDigests = blockDigests(good)
const badDigests = blockDigests(bad)
const options = { strikes: 3, leaseMs: 1_000, backoffMs: 100 }

/** Blocks of `piece` from the given senders (one per block), then a failure with their digests. */
const fail = (ban: SmartBan, piece: number, senders: ReadonlyArray<string>, now = 0) => {
  const digests = senders.map((who, b) => (who === "bad" ? badDigests[b]! : goodDigests[b]!))
  senders.forEach((who, b) => ban.sent(piece, b, who, now))
  return ban.failedPiece(piece, digests, now)
}

describe("SmartBan", () => {
  it("bans a peer after `strikes` pieces that it alone sent failed", () => {
    const ban = new SmartBan(options)
    assert.deepStrictEqual(fail(ban, 0, ["bad", "bad", "bad"]), [])
    assert.deepStrictEqual(fail(ban, 1, ["bad", "bad", "bad"]), [])
    assert.strictEqual(ban.strikes("bad"), 2)
    assert.isFalse(ban.isBanned("bad"))
    const verdicts = fail(ban, 2, ["bad", "bad", "bad"])
    assert.deepStrictEqual(
      verdicts.map((v) => v.peer),
      ["bad"]
    )
    assert.isTrue(ban.isBanned("bad"))
    assert.match(ban.banned.get("bad")!, /3 pieces it alone sent failed/)
  })

  it("a mixed failure strikes nobody; when the piece passes, the peers whose blocks differ are banned", () => {
    const ban = new SmartBan(options)
    assert.deepStrictEqual(fail(ban, 4, ["good", "bad", "good"]), [])
    assert.strictEqual(ban.strikes("good"), 0)
    assert.strictEqual(ban.strikes("bad"), 0)
    assert.isTrue(ban.needsDigests(4))
    // The piece comes again, wholly from the good peer, and passes.
    for (let b = 0; b < 3; b++) ban.sent(4, b, "good", 10)
    const verdicts = ban.passedPiece(4, goodDigests)
    assert.deepStrictEqual(
      verdicts.map((v) => v.peer),
      ["bad"]
    )
    assert.isTrue(ban.isBanned("bad"))
    assert.isFalse(ban.isBanned("good"))
    assert.isFalse(ban.needsDigests(4))
    assert.isFalse(ban.suspicious)
  })

  it("a peer that sent the same (good) block twice in failed attempts is not a culprit", () => {
    const ban = new SmartBan(options)
    fail(ban, 0, ["a", "bad", "a"])
    fail(ban, 0, ["bad", "a", "a"])
    assert.deepStrictEqual(
      ban.passedPiece(0, goodDigests).map((v) => v.peer),
      ["bad"]
    )
  })

  it("a failed piece goes to one peer at a time; its lease ends without progress or when it leaves", () => {
    const ban = new SmartBan(options)
    assert.isTrue(ban.allows(7, "a", 0))
    fail(ban, 7, ["a", "b", "a"])
    assert.isTrue(ban.suspicious)
    assert.isTrue(ban.allows(7, "a", 10), "the first to ask claims it")
    assert.isFalse(ban.allows(7, "b", 10), "others wait")
    ban.sent(7, 0, "a", 900)
    assert.isFalse(ban.allows(7, "b", 1_500), "progress renews the lease")
    assert.isTrue(ban.allows(7, "b", 1_901), "an expired lease frees it")
    ban.left("b")
    assert.isTrue(ban.allows(7, "a", 1_902), "so does leaving")
    assert.isTrue(ban.allows(8, "anyone", 0), "other pieces are unaffected")
  })

  it("a peer that alone spoiled a piece may not fetch it again before a doubling backoff", () => {
    const ban = new SmartBan({ ...options, strikes: 100 })
    fail(ban, 3, ["bad", "bad", "bad"], 0)
    assert.isFalse(ban.allows(3, "bad", 50))
    assert.isTrue(ban.allows(3, "good", 50), "another peer may")
    ban.left("good")
    assert.isTrue(ban.allows(3, "bad", 100))
    fail(ban, 3, ["bad", "bad", "bad"], 100)
    assert.isFalse(ban.allows(3, "bad", 299))
    assert.isTrue(ban.allows(3, "bad", 300))
  })

  it("without digests, a sole sender still gets its strike and a pass convicts nobody", () => {
    const ban = new SmartBan(options)
    ban.sent(0, 0, "x", 0)
    ban.sent(0, 1, "y", 0)
    ban.failedPiece(0, undefined, 0)
    ban.sent(1, 0, "x", 0)
    ban.failedPiece(1, undefined, 0)
    assert.strictEqual(ban.strikes("x"), 1)
    assert.strictEqual(ban.strikes("y"), 0)
    assert.deepStrictEqual(ban.passedPiece(0, undefined), [])
    assert.deepStrictEqual(ban.passedPiece(1, goodDigests), [])
  })

  it("a piece already hashing when a sender is banned fails as mixed: the other sender gets no strike", () => {
    // The stall beside a bad seeder: the ban used to forget the banned peer's blocks, so a piece
    // whose hash was under way failed "wholly from the good seeder", which was then held back
    // from it (and struck) though it had sent nothing wrong.
    const ban = new SmartBan(options)
    for (let piece = 0; piece < 3; piece++) fail(ban, piece, ["bad", "bad", "bad"])
    assert.isTrue(ban.isBanned("bad"))
    ban.sent(5, 0, "good", 0)
    ban.sent(5, 1, "bad", 0)
    ban.sent(5, 2, "good", 0)
    assert.deepStrictEqual(ban.blocksOf("bad"), [{ piece: 5, block: 1 }])
    assert.deepStrictEqual(ban.failedPiece(5, [goodDigests[0]!, badDigests[1]!, goodDigests[2]!], 0), [])
    assert.strictEqual(ban.strikes("good"), 0)
    assert.isTrue(ban.allows(5, "good", 1), "the good sender may fetch it again at once")
    assert.deepStrictEqual(ban.passedPiece(5, goodDigests), [], "the culprit is banned already")
  })
})
