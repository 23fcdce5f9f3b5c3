import { assert, describe, it } from "@effect/vitest"
import { Bitfield } from "@ezio/storage"
import * as Wire from "../src/Wire.js"
import type { Connection } from "../src/internal/connection.js"
import { BLOCK, Picker } from "../src/internal/picker.js"
import * as Retract from "../src/internal/retract.js"
import { blockDigests, SmartBan } from "../src/internal/smartBan.js"

const good = [new Uint8Array(16).fill(1), new Uint8Array(16).fill(2), new Uint8Array(16).fill(3)]
const bad = [new Uint8Array(16).fill(9), new Uint8Array(16).fill(9), new Uint8Array(16).fill(9)]
const goodDigests = blockDigests(good)
const badDigests = blockDigests(bad)
const options = { strikes: 3, leaseMs: 1_000, backoffMs: 100 }

/** Blocks of `piece` from the given senders (one per block), then a failure with their digests. */
const fail = (
  ban: SmartBan,
  piece: number,
  senders: ReadonlyArray<string>,
  badPeers: ReadonlyArray<string>
) => {
  const digests = senders.map((who, b) => (badPeers.includes(who) ? badDigests[b]! : goodDigests[b]!))
  senders.forEach((who, b) => ban.sent(piece, b, who, 0))
  return ban.failedPiece(piece, digests, 0)
}

describe("SmartBan and a forwarder's retraction", () => {
  it("a retracted sole failure leaves no strike and no backoff; past `strikes` retractions nothing is forgiven", () => {
    const ban = new SmartBan(options)
    fail(ban, 0, ["fwd", "fwd", "fwd"], ["fwd"])
    assert.strictEqual(ban.strikes("fwd"), 1)
    assert.isFalse(ban.allows(0, "fwd", 1))
    assert.deepStrictEqual(ban.retracted(0, "fwd", false), [])
    assert.strictEqual(ban.strikes("fwd"), 0)
    assert.isTrue(ban.allows(0, "fwd", 1))
    // Two more forgiven; the fourth failure and retraction are held against it.
    for (const piece of [1, 2]) {
      fail(ban, piece, ["fwd", "fwd", "fwd"], ["fwd"])
      assert.isDefined(ban.retracted(piece, "fwd", false))
    }
    assert.strictEqual(ban.strikes("fwd"), 0)
    fail(ban, 3, ["fwd", "fwd", "fwd"], ["fwd"])
    assert.isUndefined(ban.retracted(3, "fwd", false))
    assert.strictEqual(ban.strikes("fwd"), 1)
  })

  it("a retraction from a peer that sent nothing of the piece changes nothing and uses none of its allowance", () => {
    const ban = new SmartBan(options)
    fail(ban, 0, ["other", "other", "other"], ["other"])
    for (let i = 0; i < 5; i++) assert.deepStrictEqual(ban.retracted(0, "fwd", false), [])
    assert.strictEqual(ban.strikes("other"), 1)
    assert.strictEqual(ban.retractedCount, 0)
    fail(ban, 1, ["fwd", "fwd", "fwd"], ["fwd"])
    assert.isDefined(ban.retracted(1, "fwd", false))
    assert.strictEqual(ban.strikes("fwd"), 0)
    assert.strictEqual(ban.retractedCount, 1)
  })

  it("a mixed failure retracted before the pass convicts nobody; unretracted, the forwarder is banned", () => {
    for (const retract of [true, false]) {
      const ban = new SmartBan(options)
      fail(ban, 4, ["fwd", "fwd", "other"], ["fwd"])
      if (retract) ban.retracted(4, "fwd", false)
      for (let b = 0; b < 3; b++) ban.sent(4, b, "other", 10)
      const verdicts = ban.passedPiece(4, goodDigests).map((v) => v.peer)
      assert.deepStrictEqual(verdicts, retract ? [] : ["fwd"])
      assert.strictEqual(ban.isBanned("fwd"), !retract)
    }
  })

  it("a copy being hashed when retracted fails without the forwarder; one not hashing yet gives its blocks back", () => {
    const ban = new SmartBan(options)
    for (let b = 0; b < 3; b++) ban.sent(5, b, "fwd", 0)
    assert.deepStrictEqual(ban.retracted(5, "fwd", true), [])
    assert.deepStrictEqual(ban.failedPiece(5, badDigests, 0), [])
    assert.strictEqual(ban.strikes("fwd"), 0)
    assert.isTrue(ban.allows(5, "fwd", 1))
    // Not hashing: the blocks it sent of this attempt are to be fetched again, and no longer its.
    ban.sent(6, 0, "fwd", 0)
    ban.sent(6, 1, "other", 0)
    ban.sent(6, 2, "fwd", 0)
    assert.deepStrictEqual(ban.retracted(6, "fwd", false), [0, 2])
    assert.deepStrictEqual(ban.blocksOf("fwd"), [])
    assert.deepStrictEqual(ban.blocksOf("other"), [{ piece: 6, block: 1 }])
  })
})

/** A connection as retract.ts sees it. */
const peer = (address: string, ezio = true, retractId = 7) => {
  const sent: Array<Uint8Array> = []
  let closed: string | undefined
  let fills = 0
  const c = {
    address,
    handshaken: true,
    remoteEzio: ezio,
    remoteRetractId: retractId,
    send: (bytes: Uint8Array) => void sent.push(bytes),
    close: (why: string) => void (closed = why),
    fill: () => void fills++
  }
  return { c: c as unknown as Connection, sent, closed: () => closed, fills: () => fills }
}

const core = (connections: ReadonlyArray<Connection>) => {
  const picker = new Picker<Connection>(4, 3 * BLOCK, 12 * BLOCK, Bitfield.make(4))
  const smartBan = new SmartBan(options)
  const unreceived: Array<[number, number]> = []
  const logs: Array<string> = []
  return {
    picker,
    smartBan,
    unreceived,
    logs,
    connections: new Set(connections),
    unreceive: (piece: number, begin: number) => void unreceived.push([piece, begin]),
    log: (m: string) => void logs.push(m)
  }
}

describe("the ezio_retract message", () => {
  it("goes to the ezio peers that speak it, as an extended message with the piece index", () => {
    const a = peer("a:1")
    const other = peer("b:1", false)
    const old = peer("c:1", true, 0)
    Retract.send(core([a.c, other.c, old.c]), 258)
    assert.strictEqual(other.sent.length + old.sent.length, 0)
    assert.strictEqual(a.sent.length, 1)
    assert.deepStrictEqual(
      Buffer.from(a.sent[0]!),
      Buffer.from(Wire.encodeExtended(7, new Uint8Array([0, 0, 1, 2])))
    )
  })

  it("on receipt, the forwarder's blocks of that piece are fetched again and its failure not held against it", () => {
    const fwd = peer("fwd:1")
    const k = core([fwd.c])
    k.smartBan.sent(2, 0, "fwd:1", 0)
    k.smartBan.sent(2, 1, "fwd:1", 0)
    Retract.received(k, fwd.c, new Uint8Array([0, 0, 0, 2]))
    assert.deepStrictEqual(k.unreceived, [
      [2, 0],
      [2, BLOCK]
    ])
    assert.isAbove(fwd.fills(), 0)
    assert.isUndefined(fwd.closed())
    // A piece already verified here: what we kept is good, nothing to do.
    k.picker.markHave(3)
    k.smartBan.sent(3, 0, "fwd:1", 0)
    Retract.received(k, fwd.c, new Uint8Array([0, 0, 0, 3]))
    assert.strictEqual(k.unreceived.length, 2)
  })

  it("a malformed retraction closes the connection", () => {
    const short = peer("x:1")
    Retract.received(core([short.c]), short.c, new Uint8Array([0, 1]))
    assert.match(short.closed()!, /ezio_retract message of 2 bytes/)
    const past = peer("y:1")
    Retract.received(core([past.c]), past.c, new Uint8Array([0, 0, 0, 9]))
    assert.match(past.closed()!, /past the last piece/)
  })
})
