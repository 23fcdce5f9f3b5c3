/**
 * How initial seeding hands out its unsent pieces to ezio downloaders (swarmSeeding.ts): the last
 * ones spread over every downloader, since each takes only its share of the seeder's link, and a
 * downloader refused (nothing of its own left) gets what is still free.
 */
import { assert, describe, it } from "@effect/vitest"
import type { Connection } from "../src/internal/connection.js"
import { InitialSeeding } from "../src/internal/initialSeeding.js"
import * as Wire from "../src/Wire.js"
import { type SeedingCore, serves, suggestTo } from "../src/internal/swarmSeeding.js"

interface FakePeer {
  readonly id: number
  readonly remoteEzio: true
  readonly remoteFast: true
  readonly isSeed: false
  readonly suggested: Array<number>
  readonly peerHas: (piece: number) => boolean
  readonly send: (bytes: Uint8Array) => void
}

const fakePeer = (id: number): FakePeer => {
  const suggested: Array<number> = []
  return {
    id,
    remoteEzio: true,
    remoteFast: true,
    isSeed: false,
    suggested,
    peerHas: () => false,
    send: (bytes) => {
      // <length 5><id><index>: a suggest_piece.
      if (bytes[4] === Wire.MessageId.Suggest) suggested.push(Buffer.from(bytes).readUInt32BE(5))
    }
  }
}

const swarmOf = (pieces: number, suggestions: number, peers: ReadonlyArray<FakePeer>) => {
  const availability = new Uint32Array(pieces)
  const seeding = new InitialSeeding<Connection>(pieces, availability, () => true)
  let now = 0
  const core: SeedingCore = {
    seeding,
    superSeeding: undefined,
    firstSends: undefined,
    availability,
    suggestions,
    lastUploadAt: undefined,
    connections: new Set(peers as unknown as ReadonlyArray<Connection>),
    now: () => now
  }
  return { core, seeding, advance: (ms: number) => (now += ms) }
}

describe("initial seeding's suggestions", () => {
  it("spread the unsent pieces over every ezio downloader once few are left", () => {
    const peers = [1, 2, 3, 4].map(fakePeer)
    const { core } = swarmOf(10, 5, peers)
    for (const p of peers) suggestTo(core, p as unknown as Connection)
    const counts = peers.map((p) => p.suggested.length)
    // Five each (the cap) would leave the last two downloaders with nothing from the seeder.
    assert.deepStrictEqual(counts, [3, 3, 3, 1])
    const all = peers.flatMap((p) => p.suggested)
    assert.strictEqual(new Set(all).size, all.length, "no piece suggested to two peers")
  })

  it("a refused downloader is suggested what is still free, at most every 250 ms", () => {
    const a = fakePeer(1)
    const b = fakePeer(2)
    const { core, seeding, advance } = swarmOf(6, 5, [a, b])
    suggestTo(core, a as unknown as Connection)
    assert.deepStrictEqual(a.suggested.length, 3)
    // a's first piece leaves the seeder; b asks for it and is refused.
    const first = a.suggested[0]!
    assert.isTrue(serves(core, a as unknown as Connection, first))
    advance(1)
    assert.isFalse(serves(core, b as unknown as Connection, first))
    const free = b.suggested.length
    assert.isAbove(free, 0, "b is told of pieces nobody holds")
    assert.isTrue(b.suggested.every((piece) => !a.suggested.includes(piece)))
    assert.strictEqual(seeding.unsent, 5)
    // Refusals come per block: the next one within 250 ms suggests nothing more.
    assert.isFalse(serves(core, b as unknown as Connection, first))
    assert.strictEqual(b.suggested.length, free)
  })
})
