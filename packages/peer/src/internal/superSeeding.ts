// Super-seeding (BEP 16) for clients that are not ezio, while some piece has not left the seeder
// (initial seeding, initialSeeding.ts). Such a client is told we have nothing, then offered (a
// HAVE) a piece nobody has been sent or offered, `SLOTS` at a time; it is served only the pieces
// offered to it. A slot frees once the piece it holds is seen at another peer, or the client has
// had it for `SPREAD_MS` (nobody took it from it), or no other peer lacks it; then the next piece
// is offered. Once every piece has left the seeder, each client is told of every piece and served
// as usual. Which peers are ezio is known from their extension handshake, after our bitfield would
// go: while it is pending we send none.
//
// Offering pieces one by one only pays while there is someone to pass them to: a client that is
// the only peer lacking pieces, or one that does not announce what it got from us (its slots
// would never free), is told of every piece at once ("usual"). Until every piece is out it is
// still served only pieces no other peer was sent or offered (refused the rest), so a downloader
// that comes later is offered pieces as before and no piece leaves twice; a piece sent only to
// peers that have left, and that no connected peer has, is nowhere: it is served.
//
// `FirstSends` counts what leaves the seeder until every piece has left it once: when that is,
// and whether some piece went twice before. Plain JS: it runs per HAVE and per request.
import { type InitialSeeding, listening } from "./initialSeeding.js"

/** Pieces offered to a client at a time. */
export const SLOTS = 2
/** A client that has had its piece this long without another peer taking it gets the next one. */
export const SPREAD_MS = 2_000
/** An offered piece not asked for in this long may be offered to another peer too. */
export const UNCLAIMED_MS = 5_000
/** A peer whose extension handshake has not come in this long is taken for one that is not ezio. */
export const PENDING_MS = 2_000
/**
 * A client that has had a whole piece from us this long without announcing it does not announce
 * pieces to the peer they came from (transmission tells no peer of a piece that peer has): its
 * slots would never free, so it is served as usual.
 */
export const UNANNOUNCED_MS = 1_000

/** A peer, as super-seeding sees it. */
export interface SuperPeer {
  readonly id: number
  readonly closed: boolean
  /** It has every piece: it lacks nothing we could send. */
  readonly isSeed: boolean
  readonly peerHas: (piece: number) => boolean
  /** When its last message other than a keep-alive came (ms, as `now`). */
  readonly lastHeard?: number
  /** We have requests of it not answered yet. */
  readonly owed?: boolean
}

/** How super-seeding tells a peer what we have (the swarm sends the messages). */
export interface Announcer<P> {
  /** We have nothing (have_none with the fast extension; else no bitfield at all). */
  readonly none: (peer: P) => void
  /** What we have, as any peer is told (bitfield or have_all). */
  readonly all: (peer: P) => void
  /** HAVE for each of `pieces`. */
  readonly have: (peer: P, pieces: ReadonlyArray<number>) => void
}

interface Slot {
  readonly piece: number
  readonly offeredAt: number
  asked: boolean
  /** When the peer was first seen to have it. */
  hadAt: number | undefined
  /** Bytes of it sent to the peer, and when the last of the piece went. */
  sent: number
  sentAt: number | undefined
}

type PeerState =
  | { readonly _tag: "Pending"; readonly since: number }
  | { readonly _tag: "Super"; readonly offered: Set<number>; slots: Array<Slot> }
  /** Told of every piece while some are unsent: served only pieces that went to no other peer. */
  | { readonly _tag: "Usual" }

export class SuperSeeding<P extends SuperPeer> {
  private readonly peers = new Map<P, PeerState>()
  /** The client whose slot holds each piece. */
  private readonly holders = new Map<number, P>()
  private finished = false
  private offers = 0

  constructor(
    private readonly seeding: InitialSeeding<P>,
    private readonly availability: ArrayLike<number>,
    private readonly has: (piece: number) => boolean,
    private readonly out: Announcer<P>,
    /** Every connected peer, ezio or not. */
    private readonly connected: () => Iterable<P>
  ) {}

  /** Every piece is out: every peer knows all we have and is served as usual. */
  get done(): boolean {
    return this.finished
  }

  /** Pieces offered one by one so far. */
  get offeredCount(): number {
    return this.offers
  }

  /** Clients being offered pieces one by one now. */
  get clients(): number {
    let n = 0
    for (const state of this.peers.values()) if (state._tag === "Super") n++
    return n
  }

  /**
   * The BitTorrent handshake with `peer` is done. False if it is told what we have as usual;
   * true if super-seeding tells it (at once if it cannot be ezio, without the extension bit).
   */
  handshake(peer: P, extensions: boolean, now: number): boolean {
    if (this.finished) return false
    if (extensions) this.peers.set(peer, { _tag: "Pending", since: now })
    else this.start(peer, now)
    return true
  }

  /**
   * `peer`'s extension handshake: an ezio peer is told all we have, any other is super-seeded. A
   * later one may say ezio after all (a magnet's metadata fetch hands its connection over).
   */
  identified(peer: P, ezio: boolean, now: number): void {
    const state = this.peers.get(peer)
    if (state === undefined) return
    if (ezio) {
      this.removed(peer)
      this.out.all(peer)
    } else if (state._tag === "Pending") this.start(peer, now)
  }

  /** False if `peer` may not have `piece` from us now (it was not offered to it, or went to another). */
  allows(peer: P, piece: number, now?: number): boolean {
    if (this.finished) return true
    const state = this.peers.get(peer)
    if (state === undefined) return true
    if (state._tag === "Usual")
      return !this.seeding.sentElsewhere(piece, peer, now) && !this.seeding.reservedElsewhere(piece, peer)
    if (state._tag === "Pending" || !state.offered.has(piece)) return false
    if (this.seeding.sentElsewhere(piece, peer)) return false
    for (const slot of state.slots) if (slot.piece === piece) slot.asked = true
    return true
  }

  /** `length` bytes of `piece` (of `size`) went to `peer`. */
  sent(peer: P, piece: number, length: number, size: number, now: number): void {
    const state = this.peers.get(peer)
    if (state === undefined || state._tag !== "Super") return
    for (const slot of state.slots)
      if (slot.piece === piece) {
        slot.sent += length
        if (slot.sent >= size) slot.sentAt ??= now
      }
  }

  /** A peer announced `piece` (a HAVE): the client offered it may be due its next one. */
  seen(piece: number, now: number): void {
    const holder = this.holders.get(piece)
    if (holder !== undefined) this.settle(holder, now)
  }

  /** Periodically: late extension handshakes, slots that time out, offers that found no piece. */
  tick(now: number): void {
    if (this.finished) return
    for (const [peer, state] of this.peers) {
      if (peer.closed || state._tag === "Usual") continue
      if (state._tag === "Pending") {
        if (now - state.since >= PENDING_MS) this.start(peer, now)
        continue
      }
      for (const slot of state.slots)
        if (!slot.asked && now - slot.offeredAt >= UNCLAIMED_MS) this.seeding.release(peer, slot.piece)
      this.settle(peer, now)
    }
  }

  /** `peer` left (or is no longer super-seeded): the pieces offered to it are free. */
  removed(peer: P): void {
    const state = this.peers.get(peer)
    this.peers.delete(peer)
    if (state?._tag === "Super")
      for (const slot of state.slots) {
        if (this.holders.get(slot.piece) === peer) this.holders.delete(slot.piece)
        this.seeding.release(peer, slot.piece)
      }
  }

  /** Every piece has left the seeder: each client hears of the pieces it was not offered. */
  finish(): void {
    if (this.finished) return
    this.finished = true
    for (const [peer, state] of this.peers) {
      if (peer.closed) continue
      if (state._tag === "Pending") this.out.all(peer)
      else if (state._tag === "Super") this.announceRest(peer, state.offered)
    }
    this.peers.clear()
    this.holders.clear()
  }

  private start(peer: P, now: number): void {
    if (this.alone(peer, now)) {
      this.peers.set(peer, { _tag: "Usual" })
      this.out.all(peer)
      return
    }
    this.peers.set(peer, { _tag: "Super", offered: new Set(), slots: [] })
    this.out.none(peer)
    this.settle(peer, now)
  }

  /** Frees `peer`'s slots that are done with, and offers it new pieces for them. */
  private settle(peer: P, now: number): void {
    const state = this.peers.get(peer)
    if (state === undefined || state._tag !== "Super" || peer.closed) return
    if (
      this.alone(peer, now) ||
      state.slots.some(
        (slot) =>
          slot.sentAt !== undefined && !peer.peerHas(slot.piece) && now - slot.sentAt >= UNANNOUNCED_MS
      )
    )
      return this.serveAsUsual(peer, state.offered)
    const kept = state.slots.filter((slot) => {
      const piece = slot.piece
      const gone = this.seeding.sentElsewhere(piece, peer) && !peer.peerHas(piece)
      if (!gone && peer.peerHas(piece)) {
        slot.hadAt ??= now
        if (!(
          this.availability[piece]! >= 2 ||
          now - slot.hadAt >= SPREAD_MS ||
          this.nobodyElseLacks(peer, piece)
        ))
          return true
      } else if (!gone) return true
      if (this.holders.get(piece) === peer) this.holders.delete(piece)
      this.seeding.release(peer, piece)
      return false
    })
    const offers: Array<number> = []
    while (kept.length < SLOTS) {
      const piece = this.seeding.claim(peer, (p) => !peer.peerHas(p) && !state.offered.has(p))
      if (piece === undefined) break
      kept.push({ piece, offeredAt: now, asked: false, hadAt: undefined, sent: 0, sentAt: undefined })
      state.offered.add(piece)
      this.holders.set(piece, peer)
      offers.push(piece)
    }
    state.slots = kept
    this.offers += offers.length
    if (offers.length > 0) this.out.have(peer, offers)
  }

  /**
   * `peer` is told of every piece it was not offered and served as usual from now on (but for
   * pieces that went, or are offered, to another peer while some are unsent).
   */
  private serveAsUsual(peer: P, offered: ReadonlySet<number>): void {
    this.removed(peer)
    this.peers.set(peer, { _tag: "Usual" })
    this.announceRest(peer, offered)
  }

  /**
   * No connected peer but `peer` lacks pieces, or only peers that do not read (`listening`):
   * offering them one by one would spread nothing, and hold `peer` to two pieces at a time.
   */
  private alone(peer: P, now: number): boolean {
    for (const other of this.connected())
      if (other !== peer && !other.closed && !other.isSeed && listening(other, now)) return false
    return true
  }

  /** HAVE for every piece we have that `peer` was not offered. */
  private announceRest(peer: P, offered: ReadonlySet<number>): void {
    const rest: Array<number> = []
    for (let piece = 0; piece < this.seeding.pieceCount; piece++)
      if (this.has(piece) && !offered.has(piece)) rest.push(piece)
    if (rest.length > 0) this.out.have(peer, rest)
  }

  private nobodyElseLacks(peer: P, piece: number): boolean {
    for (const [other, state] of this.peers)
      if (other !== peer && state._tag === "Super" && !other.closed && !other.peerHas(piece)) return false
    return true
  }
}

/**
 * What leaves the seeder until every piece has left it whole at least once, counted per piece as
 * blocks are sent: a piece's bytes past its size were sent twice.
 */
export class FirstSends {
  private readonly bytes: Float64Array
  private out = 0
  private before = 0
  private repeated = 0

  constructor(
    readonly pieceCount: number,
    readonly pieceSize: (piece: number) => number
  ) {
    this.bytes = new Float64Array(pieceCount)
  }

  /** Every piece has left whole at least once. */
  get allOut(): boolean {
    return this.out === this.pieceCount
  }

  /** `length` bytes of `piece` went to a peer; true if that made every piece out. */
  sent(piece: number, length: number): boolean {
    if (this.out === this.pieceCount) return false
    this.before += length
    const size = this.pieceSize(piece)
    const had = this.bytes[piece]!
    const now = had + length
    this.bytes[piece] = now
    if (had >= size) this.repeated += length
    else if (now >= size) {
      this.repeated += now - size
      this.out++
    }
    return this.out === this.pieceCount
  }

  /** For the swarm's status. */
  get status(): {
    readonly piecesOut: number
    readonly uploadedBeforeAllOut: number
    readonly repeatedBeforeAllOut: number
  } {
    return { piecesOut: this.out, uploadedBeforeAllOut: this.before, repeatedBeforeAllOut: this.repeated }
  }
}
