// Initial seeding, the seeder's side of a deploy: while some piece has never left the seeder, it
// sends no piece twice to peers that play along (ezio targets, told apart by a key in the BEP 10
// handshake). A request for a piece already sent to a peer still connected, or already had by one,
// is refused (BEP 6 reject_request): the requester can get it from that peer. Each such peer is
// suggested (BEP 6 suggest_piece) pieces nobody has yet, a few at a time and none to two peers, so
// it rarely asks for one it would be refused. When every holder of a piece has left, it is served
// as usual. Once every piece is out the refusals go on (the targets' links, together, are faster
// than the seeder's), but a peer that asks again for a refused piece, `RETRY_MS` after a peer
// announced it, could not get it elsewhere and is served; a piece still on its way to its first
// ezio peer is refused longer (`IN_TRANSIT_RETRY_MS`): sending it twice would only delay another
// piece. A piece on its way only to other clients that have sent nothing for `QUIET_MS` is on its
// way to nobody: a client receiving blocks asks for more as they come (one that never reads says
// nothing, and the kernel's buffers hide from us that it takes nothing). In that tail the
// seeder's link would sit idle while the targets finish among themselves, so the peers furthest
// behind (`behind`) are served pieces others have while the pieces sent more than once (for any
// reason) stay under `TAIL_SHARE` of the torrent. Plain JS: it runs per request on the event loop.
import { QUIET_MS } from "./upload.js"

/** A peer, as the policy tells peers apart. */
export interface Holder {
  readonly id: number
  /** When its last message other than a keep-alive came (ms, as `now`). */
  readonly lastHeard?: number
  /** We have requests of it not answered yet (it is waiting on us, not silent of its own). */
  readonly owed?: boolean
}

/**
 * Whether a peer may still be reading what we send it: heard from within `QUIET_MS`, or waiting on
 * us (requests not answered yet). One silent past that, owed nothing, does not read what it asked
 * for, or asks for nothing (also superSeeding.ts).
 */
export const listening = (
  who: { readonly lastHeard?: number; readonly owed?: boolean },
  now: number
): boolean => who.owed === true || who.lastHeard === undefined || now - who.lastHeard < QUIET_MS

/** A peer asking again this long after a refusal is served: nobody else gave it the piece. */
export const RETRY_MS = 4_000
/**
 * The same, while no peer has announced the piece yet (it is still being sent to one): served
 * only if that peer got nowhere with it in this long.
 */
export const IN_TRANSIT_RETRY_MS = 30_000
/**
 * Share of the pieces sent more than once below which the seeder, once every piece is out, serves
 * the peers furthest behind: its link stays busy in the tail. At 0.08 the repeats of the emission
 * left the tail one or two pieces at 16 @ 25 Mbit/s and the seeder's link idled in its last
 * seconds; at 0.16 (swarm bench, interleaved) the last target was done sooner in 5 of 6 pairs
 * (0.2-1.8 s; one 0.3 s later) and the seeder still sent at most 1.07 × the torrent. It only
 * acts once every piece is out, so the emission is as before.
 */
export const TAIL_SHARE = 0.16

interface Refusal {
  readonly at: number
  /** Another peer had the piece (it was not only on its way to one). */
  readonly held: boolean
}

interface PeerState {
  /** Pieces sent to this peer. */
  readonly sent: Array<number>
  /** Pieces suggested to it (stale entries are skipped). */
  reserved: Array<number>
  /**
   * Pieces refused to it, and since when: the first refusal, or the first once another peer had
   * the piece (the wait for it to come from that peer starts then).
   */
  readonly refused: Map<number, Refusal>
  /** It plays along (an ezio target): a piece on its way to it will be passed on. */
  strict: boolean
}

export class InitialSeeding<R extends Holder> {
  private readonly sentTo: Array<Array<R> | undefined>
  private readonly everSent: Uint8Array
  private readonly reservedBy: Array<R | undefined>
  /** The pieces in a random order, for suggestions; everything before `cursor` is sent. */
  private readonly order: Uint32Array
  private cursor = 0
  private unsentCount: number
  private readonly peers = new Map<R, PeerState>()
  /** Pieces sent more than once (to another peer), and the most the tail lets that reach. */
  private again = 0
  private refusals = 0
  private readonly tailBudget: number

  /**
   * `availability` counts, per piece, the connected peers that have it (the swarm's picker keeps
   * it); `have` tells which pieces we have to send at all.
   */
  constructor(
    readonly pieceCount: number,
    private readonly availability: ArrayLike<number>,
    have: (piece: number) => boolean,
    random: () => number = Math.random
  ) {
    this.sentTo = new Array(pieceCount)
    this.everSent = new Uint8Array(pieceCount)
    this.reservedBy = new Array(pieceCount)
    this.order = new Uint32Array(pieceCount)
    this.unsentCount = 0
    for (let i = 0; i < pieceCount; i++) {
      this.order[i] = i
      if (have(i)) this.unsentCount++
      else this.everSent[i] = 1 // Not ours to send: never wait for it.
    }
    this.tailBudget = Math.floor(pieceCount * TAIL_SHARE)
    for (let i = pieceCount - 1; i > 0; i--) {
      const j = Math.floor(random() * (i + 1))
      const t = this.order[i]!
      this.order[i] = this.order[j]!
      this.order[j] = t
    }
  }

  /** Some piece has not left the seeder yet: the policy is on. */
  get active(): boolean {
    return this.unsentCount > 0
  }

  /** Pieces that have not left the seeder yet. */
  get unsent(): number {
    return this.unsentCount
  }

  /** Requests of peers that play along refused so far (the piece was with, or on its way to, another). */
  get refused(): number {
    return this.refusals
  }

  /** Pieces the tail may still send again. */
  get tail(): number {
    return Math.max(0, this.tailBudget - this.again)
  }

  /**
   * Whether to serve `who`'s request for `piece` at `now` (ms; recorded as sent to it if so).
   * `strict` for a peer that plays along (it goes elsewhere when refused); others are always
   * served. `behind`: `who` is among the peers furthest behind (served in the tail).
   */
  serve(who: R, piece: number, strict: boolean, now: number, behind = false): boolean {
    this.peer(who).strict = strict
    const sent = this.sentTo[piece]
    if (this.everSent[piece] === 0) {
      this.everSent[piece] = 1
      this.unsentCount--
      this.reservedBy[piece] = undefined
      this.record(who, piece)
      return true
    }
    if (sent !== undefined && sent.includes(who)) return true
    const held = this.availability[piece]! > 0
    if (strict && (held || (sent !== undefined && sent.some((p) => this.underway(p, now))))) {
      if (behind && this.unsentCount === 0 && this.again < this.tailBudget) {
        this.again++
        this.record(who, piece)
        return true
      }
      const refused = this.peer(who).refused
      const first = refused.get(piece)
      // Refused while on its way to a peer, and now that peer has it: the asker can get it from
      // that peer from now on, so the wait starts again (on a slow shared link a piece takes
      // longer than `RETRY_MS` to arrive: counted from the first refusal it was sent twice).
      if (first === undefined || (held && !first.held)) {
        refused.set(piece, { at: now, held })
        this.refusals++
        return false
      }
      // Still on its way to a peer that is connected: the asker gets it from that peer once it is
      // in, however long a piece takes on the seeder's shared link (many peers, a slow link).
      // Only a peer that plays along is waited for that long: another client (or one that never
      // reads) may never pass the piece on.
      const wait = held || !sent!.some((p) => this.peer(p).strict) ? RETRY_MS : IN_TRANSIT_RETRY_MS
      if (now - first.at < wait) {
        this.refusals++
        return false
      }
    }
    this.again++
    this.record(who, piece)
    return true
  }

  /** What was sent to `who` may still reach it: it plays along, or it is still talking to us. */
  private underway(who: R, now: number): boolean {
    return this.peer(who).strict || listening(who, now)
  }

  private record(who: R, piece: number): void {
    const sent = this.sentTo[piece]
    if (sent === undefined) this.sentTo[piece] = [who]
    else sent.push(who)
    this.peer(who).sent.push(piece)
  }

  private peer(who: R): PeerState {
    let state = this.peers.get(who)
    if (state === undefined) {
      state = { sent: [], reserved: [], refused: new Map(), strict: false }
      this.peers.set(who, state)
    }
    return state
  }

  /**
   * Pieces to suggest to `who` now so that `keep` unsent pieces are suggested to it and to no
   * other peer; `wants(piece)` is false for pieces it has. Empty once every piece is out.
   */
  suggest(who: R, keep: number, wants: (piece: number) => boolean): Array<number> {
    const out: Array<number> = []
    if (this.unsentCount === 0) return out
    const state = this.peer(who)
    state.reserved = state.reserved.filter((p) => this.everSent[p] === 0 && this.reservedBy[p] === who)
    let need = keep - state.reserved.length
    while (this.cursor < this.pieceCount && this.everSent[this.order[this.cursor]!] === 1) this.cursor++
    for (let k = this.cursor; k < this.pieceCount && need > 0; k++) {
      const piece = this.order[k]!
      if (this.everSent[piece] === 1 || this.reservedBy[piece] !== undefined || !wants(piece)) continue
      this.reservedBy[piece] = who
      state.reserved.push(piece)
      out.push(piece)
      need--
    }
    return out
  }

  /**
   * An unsent piece offered to no other peer, reserved to `who` until it is sent, released or
   * `who` leaves (super-seeding a client that is not ezio, superSeeding.ts): the least available
   * first, ties in the random order. `wants(piece)` is false for pieces it has.
   */
  claim(who: R, wants: (piece: number) => boolean): number | undefined {
    if (this.unsentCount === 0) return undefined
    while (this.cursor < this.pieceCount && this.everSent[this.order[this.cursor]!] === 1) this.cursor++
    let best: number | undefined
    let bestAvailability = Infinity
    for (let k = this.cursor; k < this.pieceCount && bestAvailability > 0; k++) {
      const piece = this.order[k]!
      const reserved = this.reservedBy[piece]
      if (this.everSent[piece] === 1 || (reserved !== undefined && reserved !== who) || !wants(piece))
        continue
      const availability = this.availability[piece]!
      if (availability < bestAvailability) {
        best = piece
        bestAvailability = availability
      }
    }
    if (best === undefined) return undefined
    this.reservedBy[best] = who
    this.peer(who).reserved.push(best)
    return best
  }

  /** `who`'s reservation of `piece` (from `claim`) ends: another peer may be offered it. */
  release(who: R, piece: number): void {
    if (this.reservedBy[piece] === who) this.reservedBy[piece] = undefined
  }

  /** An unsent `piece` is claimed by, or suggested to, a peer other than `who`. */
  reservedElsewhere(piece: number, who: R): boolean {
    const by = this.reservedBy[piece]
    return by !== undefined && by !== who && this.everSent[piece] === 0
  }

  /**
   * `piece` has left the seeder, and not (or not only) to `who`, or it is not ours to send. Not
   * once every peer it went to has left and no connected peer has it: it is nowhere (refused, a
   * libtorrent client asks for it again at once, and for no other piece, for a minute).
   */
  sentElsewhere(piece: number, who: R, now?: number): boolean {
    if (this.everSent[piece] === 0) return false
    const sent = this.sentTo[piece]
    if (sent === undefined) return true
    if (this.availability[piece]! > 0) return sent.length !== 1 || sent[0] !== who
    // Nobody has it: only a peer it went to that may still pass it on holds it (with `now`, a
    // client silent past `QUIET_MS` with nothing owed by us is not reading: it holds nothing).
    return sent.some((p) => p !== who && (now === undefined || this.underway(p, now)))
  }

  /** `who` left: the pieces sent to it count as out no more, its suggestions are free again. */
  removed(who: R): void {
    const state = this.peers.get(who)
    if (state === undefined) return
    this.peers.delete(who)
    for (const piece of state.sent) {
      const sent = this.sentTo[piece]
      if (sent === undefined) continue
      const at = sent.indexOf(who)
      if (at >= 0) sent.splice(at, 1)
    }
    for (const piece of state.reserved) if (this.reservedBy[piece] === who) this.reservedBy[piece] = undefined
  }
}
