import { assert, describe, it } from "@effect/vitest"
import { InitialSeeding } from "../src/internal/initialSeeding.js"
import {
  type Announcer,
  FirstSends,
  PENDING_MS,
  SLOTS,
  SPREAD_MS,
  SuperSeeding,
  UNANNOUNCED_MS,
  UNCLAIMED_MS
} from "../src/internal/superSeeding.js"
import { QUIET_MS } from "../src/internal/upload.js"

/** A peer: what it has, and what it was told (have_none, have_all, the HAVEs, in order). */
class Peer {
  closed = false
  isSeed = false
  lastHeard?: number
  owed = false
  readonly bits = new Set<number>()
  told: Array<string> = []
  readonly haves: Array<number> = []
  constructor(readonly id: number) {}
  readonly peerHas = (piece: number) => this.bits.has(piece)
}

const announcer: Announcer<Peer> = {
  none: (p) => p.told.push("none"),
  all: (p) => p.told.push("all"),
  have: (p, pieces) => {
    p.haves.push(...pieces)
    p.told.push(...pieces.map((piece) => `have ${piece}`))
  }
}

/**
 * `pieces` pieces, all ours. `peer(id)` connects a peer (super-seeding hears of it only through
 * `handshake`); `downloader()` connects one that lacks pieces and is not super-seeded (an ezio
 * target), so that the clients are not alone.
 */
const make = (pieces: number) => {
  const availability = new Uint32Array(pieces)
  const seeding = new InitialSeeding<Peer>(pieces, availability, () => true)
  const connected: Array<Peer> = []
  const superSeeding = new SuperSeeding<Peer>(
    seeding,
    availability,
    () => true,
    announcer,
    () => connected
  )
  const peer = (id: number) => {
    const p = new Peer(id)
    connected.push(p)
    return p
  }
  const downloader = () => peer(100 + connected.length)
  /** `p` got `piece` (and told everyone with a HAVE). */
  const got = (p: Peer, piece: number, now: number) => {
    p.bits.add(piece)
    availability[piece]!++
    superSeeding.seen(piece, now)
  }
  /** `p` asks for `piece`: true if served (the policy as the swarm applies it). */
  const asks = (p: Peer, piece: number) => superSeeding.allows(p, piece) && seeding.serve(p, piece, false, 0)
  return { availability, seeding, superSeeding, got, asks, peer, downloader }
}

describe("SuperSeeding", () => {
  it("a client that never announces the whole pieces it got from us is served as usual", () => {
    const { superSeeding, asks, peer, downloader } = make(10)
    downloader()
    const a = peer(1)
    superSeeding.handshake(a, false, 0)
    const offered = [...a.haves]
    assert.strictEqual(offered.length, SLOTS)
    const notOffered = [...Array(10).keys()].filter((p) => !offered.includes(p))
    assert.isFalse(asks(a, notOffered[0]!))
    // It asks for and gets both offered pieces whole, and says nothing of them (as transmission).
    for (const piece of offered) {
      assert.isTrue(asks(a, piece))
      superSeeding.sent(a, piece, 1024, 1024, 100)
    }
    superSeeding.tick(100 + UNANNOUNCED_MS - 1)
    assert.strictEqual(a.haves.length, SLOTS, "still super-seeded: it may yet announce them")
    superSeeding.tick(100 + UNANNOUNCED_MS)
    assert.strictEqual(superSeeding.clients, 0)
    assert.sameMembers(a.haves, [...Array(10).keys()], "told of every other piece, each once")
    assert.strictEqual(a.haves.length, 10)
    assert.isTrue(superSeeding.allows(a, notOffered[0]!))
  })

  it("the only peer that lacks pieces is told of every piece at once and served as usual", () => {
    const { superSeeding, asks, peer } = make(10)
    const seed = peer(1)
    seed.isSeed = true
    const a = peer(2)
    assert.isTrue(superSeeding.handshake(a, false, 0))
    assert.deepStrictEqual(a.told, ["all"], "no have_none, no offers: nobody to spread pieces to")
    assert.strictEqual(superSeeding.clients, 0)
    for (let piece = 0; piece < 10; piece++) assert.isTrue(asks(a, piece), `piece ${piece}`)
  })

  it("beside peers silent past QUIET_MS and owed nothing (they do not read), a client is served as usual", () => {
    const { superSeeding, asks, peer } = make(10)
    const mute = peer(1)
    mute.lastHeard = 0
    const a = peer(2)
    superSeeding.handshake(a, false, QUIET_MS)
    assert.deepStrictEqual(a.told, ["all"], "nobody to spread pieces to")
    for (let piece = 0; piece < 10; piece++) assert.isTrue(asks(a, piece), `piece ${piece}`)
    // One we still owe requests to takes part: a later client is super-seeded.
    mute.owed = true
    const b = peer(3)
    superSeeding.handshake(b, false, 10 * QUIET_MS)
    assert.strictEqual(b.told[0], "none")
  })

  it("a downloader that comes later is offered only what the first has not been sent, and no piece leaves twice", () => {
    const { superSeeding, asks, peer } = make(10)
    const a = peer(1)
    superSeeding.handshake(a, false, 0)
    assert.deepStrictEqual(a.told, ["all"])
    for (const piece of [0, 1, 2]) assert.isTrue(asks(a, piece))
    const b = peer(2)
    superSeeding.handshake(b, false, 10)
    assert.strictEqual(b.told[0], "none", "a lacks pieces too: b is offered them one by one")
    assert.strictEqual(b.haves.length, SLOTS)
    for (const piece of b.haves) {
      assert.notInclude([0, 1, 2], piece, "never a piece that went to a")
      assert.isFalse(asks(a, piece), "a is refused the pieces offered to b")
      assert.isTrue(asks(b, piece))
    }
    for (const piece of [0, 1, 2]) {
      assert.isTrue(asks(a, piece), "the rest of a piece under way to a")
      assert.isFalse(asks(b, piece), "not offered to b, and it went to a")
    }
    const rest = [...Array(10).keys()].filter((p) => p > 2 && !b.haves.includes(p))
    for (const piece of rest) assert.isTrue(asks(a, piece), "a piece that went nowhere yet")
    assert.strictEqual(superSeeding.clients, 1)
  })

  it("a client whose other downloaders leave is told the rest and served as usual", () => {
    const { superSeeding, asks, peer } = make(10)
    const a = peer(1)
    const b = peer(2)
    superSeeding.handshake(a, false, 0)
    superSeeding.handshake(b, false, 0)
    const offered = [...a.haves]
    assert.strictEqual(offered.length, SLOTS)
    b.closed = true
    superSeeding.removed(b)
    superSeeding.tick(1)
    assert.strictEqual(superSeeding.clients, 0)
    assert.sameMembers(a.haves, [...Array(10).keys()], "told of every piece, each once")
    assert.strictEqual(a.haves.length, 10)
    const notOffered = [...Array(10).keys()].find((p) => !offered.includes(p))!
    assert.isTrue(asks(a, notOffered))
  })

  it("a client served as usual for not announcing is still refused what went to another client", () => {
    const { superSeeding, asks, peer } = make(10)
    const a = peer(1)
    const b = peer(2)
    superSeeding.handshake(a, false, 0)
    superSeeding.handshake(b, false, 0)
    for (const piece of a.haves) {
      assert.isTrue(asks(a, piece))
      superSeeding.sent(a, piece, 1024, 1024, 0)
    }
    const x = b.haves[0]!
    assert.isTrue(asks(b, x))
    superSeeding.tick(UNANNOUNCED_MS)
    assert.strictEqual(superSeeding.clients, 1, "a is served as usual, b still offered pieces")
    assert.strictEqual(a.haves.length, 10)
    assert.isFalse(asks(a, x), "x went to b")
    assert.isFalse(asks(a, b.haves[1]!), "offered to b")
    const free = [...Array(10).keys()].find(
      (p) => !a.haves.slice(0, SLOTS).includes(p) && !b.haves.includes(p)
    )!
    assert.isTrue(asks(a, free))
    superSeeding.finish()
    assert.isTrue(asks(a, x), "every piece is out: served as usual")
  })

  // Refused a piece it was told we have, libtorrent asks for it again at once, and for no other
  // piece, until its request timeout (60 s by default) gives up on us.
  it("a client served as usual gets a piece whose only recipient left", () => {
    const { availability, seeding, superSeeding, asks, peer } = make(4)
    // Alone, a flooder is told of every piece; it is sent pieces 0 and 1, then dropped for flooding.
    const flooder = peer(1)
    superSeeding.handshake(flooder, false, 0)
    assert.isTrue(asks(flooder, 0))
    assert.isTrue(asks(flooder, 1))
    flooder.closed = true
    seeding.removed(flooder)
    superSeeding.removed(flooder)
    const client = peer(2)
    superSeeding.handshake(client, false, 10)
    assert.deepStrictEqual(client.told, ["all"])
    assert.isTrue(asks(client, 0), "nobody connected has it or is getting it")
    availability[1] = 1
    assert.isFalse(asks(client, 1), "a connected peer has it (from the flooder)")
  })

  it("a client that has only part of an offered piece is waited for", () => {
    const { superSeeding, peer, downloader } = make(10)
    downloader()
    const a = peer(1)
    superSeeding.handshake(a, false, 0)
    for (const piece of a.haves) superSeeding.sent(a, piece, 512, 1024, 0)
    superSeeding.tick(10 * UNANNOUNCED_MS)
    assert.strictEqual(superSeeding.clients, 1)
    assert.strictEqual(a.haves.length, SLOTS)
  })

  it("tells a client nothing, then offers unsent pieces two at a time, none to two clients", () => {
    const { superSeeding, peer } = make(10)
    const a = peer(1)
    const b = peer(2)
    assert.isTrue(superSeeding.handshake(a, false, 0), "no extension bit: not ezio")
    assert.isTrue(superSeeding.handshake(b, false, 0))
    assert.strictEqual(a.told[0], "none")
    assert.strictEqual(a.haves.length, SLOTS)
    assert.strictEqual(b.haves.length, SLOTS)
    assert.strictEqual(new Set([...a.haves, ...b.haves]).size, 2 * SLOTS, "no piece offered twice")
  })

  it("serves a client only what was offered to it", () => {
    const { superSeeding, asks, peer } = make(10)
    const a = peer(1)
    const b = peer(2)
    superSeeding.handshake(a, false, 0)
    superSeeding.handshake(b, false, 0)
    const [x] = a.haves
    assert.isTrue(asks(a, x!))
    assert.isTrue(asks(a, x!), "the rest of the piece")
    assert.isFalse(asks(b, x!), "not offered to b")
    const notOffered = [...Array(10).keys()].find((p) => !a.haves.includes(p) && !b.haves.includes(p))!
    assert.isFalse(asks(a, notOffered))
  })

  it("offers the next piece once the last one is seen at another peer, not before", () => {
    const { superSeeding, got, asks, peer } = make(10)
    const a = peer(1)
    const b = peer(2)
    superSeeding.handshake(a, false, 0)
    superSeeding.handshake(b, false, 0)
    const x = a.haves[0]!
    asks(a, x)
    got(a, x, 100)
    assert.strictEqual(a.haves.length, SLOTS, "b lacks it: a waits until it spreads")
    got(b, x, 200)
    assert.strictEqual(a.haves.length, SLOTS + 1, "b has it from a: a gets one more")
    assert.strictEqual(b.haves.length, SLOTS, "b's own slots are unchanged")
  })

  it("offers the next piece after a while when nobody takes it, at once to the only client", () => {
    const { superSeeding, got, asks, peer, downloader } = make(10)
    // An ezio target lacks pieces too: the client is offered pieces one by one, but it is the
    // only one offered them.
    downloader()
    const lone = peer(1)
    superSeeding.handshake(lone, false, 0)
    const x = lone.haves[0]!
    asks(lone, x)
    got(lone, x, 10)
    assert.strictEqual(lone.haves.length, SLOTS + 1, "no other client to pass it to")

    const two = make(10)
    const a = two.peer(1)
    const idle = two.peer(2)
    two.superSeeding.handshake(a, false, 0)
    two.superSeeding.handshake(idle, false, 0)
    const y = a.haves[0]!
    two.asks(a, y)
    two.got(a, y, 1_000)
    two.superSeeding.tick(1_000 + SPREAD_MS - 1)
    assert.strictEqual(a.haves.length, SLOTS)
    two.superSeeding.tick(1_000 + SPREAD_MS)
    assert.strictEqual(a.haves.length, SLOTS + 1, "the other peer never took it")
  })

  it("waits for the extension handshake: an ezio peer is told everything, another is super-seeded", () => {
    const { superSeeding, peer } = make(4)
    const ezio = peer(1)
    const other = peer(2)
    const silent = peer(3)
    assert.isTrue(superSeeding.handshake(ezio, true, 0))
    assert.isTrue(superSeeding.handshake(other, true, 0))
    assert.isTrue(superSeeding.handshake(silent, true, 0))
    assert.deepStrictEqual(ezio.told, [], "nothing until we know what it is")
    assert.isFalse(superSeeding.allows(other, 0), "nothing offered yet")
    superSeeding.identified(ezio, true, 10)
    superSeeding.identified(other, false, 10)
    assert.deepStrictEqual(ezio.told, ["all"])
    assert.isTrue(superSeeding.allows(ezio, 0), "initial seeding decides for ezio peers")
    assert.strictEqual(other.told[0], "none")
    assert.strictEqual(other.haves.length, SLOTS)
    superSeeding.tick(PENDING_MS - 1)
    assert.deepStrictEqual(silent.told, [])
    superSeeding.tick(PENDING_MS)
    assert.strictEqual(silent.told[0], "none", "no extension handshake: not ezio")
  })

  it("a peer super-seeded as a stranger that says ezio later is told everything, its offers freed", () => {
    const { superSeeding, peer, downloader } = make(SLOTS)
    downloader()
    const handedOver = peer(1)
    superSeeding.handshake(handedOver, true, 0)
    superSeeding.identified(handedOver, false, 0)
    assert.strictEqual(handedOver.haves.length, SLOTS)
    superSeeding.identified(handedOver, true, 10)
    assert.strictEqual(handedOver.told.at(-1), "all")
    assert.isTrue(superSeeding.allows(handedOver, 0))
    const next = peer(2)
    superSeeding.handshake(next, false, 10)
    assert.strictEqual(next.haves.length, SLOTS, "the pieces offered before are free again")
  })

  it("offers a client the pieces suggested to it before too", () => {
    const { seeding, superSeeding, peer, downloader } = make(SLOTS)
    downloader()
    const a = peer(1)
    assert.strictEqual(seeding.suggest(a, SLOTS, () => true).length, SLOTS)
    superSeeding.handshake(a, false, 0)
    assert.strictEqual(a.haves.length, SLOTS)
  })

  it("an offer not asked for is offered again elsewhere; whoever asks first gets it, once", () => {
    const { superSeeding, asks, peer } = make(SLOTS)
    const a = peer(1)
    const b = peer(2)
    superSeeding.handshake(a, false, 0)
    superSeeding.handshake(b, false, 0)
    assert.strictEqual(b.haves.length, 0, "every piece is offered to a")
    superSeeding.tick(UNCLAIMED_MS)
    assert.sameMembers(b.haves, a.haves, "a never asked: b is offered them too")
    const x = a.haves[0]!
    assert.isTrue(asks(b, x))
    assert.isFalse(asks(a, x), "it left to b: a would be its second")
  })

  it("once every piece is out, tells each client of the pieces it was not offered and serves all", () => {
    const { superSeeding, asks, peer, downloader } = make(6)
    downloader()
    const a = peer(1)
    superSeeding.handshake(a, false, 0)
    const offered = [...a.haves]
    superSeeding.finish()
    assert.isTrue(superSeeding.done)
    assert.sameMembers(a.haves, [0, 1, 2, 3, 4, 5])
    assert.strictEqual(a.haves.length, 6, "no piece announced twice")
    assert.notInclude(a.haves.slice(offered.length), offered[0])
    assert.isTrue(asks(a, 5))
    assert.isFalse(superSeeding.handshake(peer(2), false, 0), "a new peer is told as usual")
  })

  it("a client that leaves frees the pieces offered to it", () => {
    const { seeding, superSeeding, peer } = make(2 * SLOTS)
    const a = peer(1)
    const b = peer(2)
    superSeeding.handshake(a, false, 0)
    superSeeding.handshake(b, false, 0)
    const c = peer(3)
    superSeeding.handshake(c, false, 0)
    assert.strictEqual(c.haves.length, 0, "all pieces are offered")
    a.closed = true
    // As the swarm does: initial seeding and super-seeding both forget it.
    seeding.removed(a)
    superSeeding.removed(a)
    superSeeding.tick(1)
    assert.sameMembers(c.haves, a.haves)
  })
})

describe("FirstSends", () => {
  it("counts the bytes up to every piece out and those sent twice before", () => {
    const first = new FirstSends(3, (piece) => (piece === 2 ? 5 : 10))
    assert.isFalse(first.sent(0, 10))
    assert.isFalse(first.sent(1, 6))
    assert.isFalse(first.sent(1, 6), "piece 1 is out, 2 bytes of it twice")
    assert.isFalse(first.sent(0, 4), "piece 0 again, before all are out")
    assert.isTrue(first.sent(2, 5), "the last piece leaves")
    assert.isTrue(first.allOut)
    first.sent(0, 10)
    assert.deepStrictEqual(first.status, { piecesOut: 3, uploadedBeforeAllOut: 31, repeatedBeforeAllOut: 6 })
  })
})
