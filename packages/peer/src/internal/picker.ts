// Which blocks to request from which peer: rarest piece first (so a swarm of targets spreads the
// pieces among themselves instead of all fetching the same ones from the seeder), partial pieces
// before new ones, pieces the peer suggested before the rarest, from a seed only pieces no other
// peer has (while there are such), and an end game that asks an idle peer for blocks still
// outstanding once every block of every missing piece is requested. Plain JS: it runs per batch
// of requests on the event loop.
import { Bitfield } from "@ezio/storage"
import { Metainfo } from "@ezio/torrent"

/** The block size of requests, and of the pool blocks received blocks land in. */
export const BLOCK = 16 * 1024

export interface Requester {
  readonly id: number
}

export interface PieceState<R extends Requester = Requester> {
  readonly piece: number
  readonly size: number
  readonly blocks: number
  /** 0 not requested, 1 requested, 2 received. */
  readonly state: Uint8Array
  /** Who each requested block was asked of (more than one in the end game). */
  readonly requesters: Array<Array<R> | undefined>
  unrequested: number
  missing: number
  hashing: boolean
}

export interface Pick {
  readonly piece: number
  readonly begin: number
  readonly length: number
}

/** What the picker knows of the peer it picks for, besides which pieces it has. */
export interface PickContext {
  /** Requests already outstanding to this peer: end-game duplicates go to idle peers only. */
  readonly busy?: number
  /** The peer has every piece: ask it only for pieces no other (non-seed) peer has, if any. */
  readonly seed?: boolean
  /** Pieces the peer suggested (BEP 6 suggest_piece), tried before the rarest. */
  readonly suggested?: ReadonlyArray<number>
  /**
   * Ask the peer for no new piece but those it suggested (an ezio seeder sending pieces out for
   * the first time refuses the others: each refusal holds a place in its queue for a round trip).
   */
  readonly suggestedOnly?: boolean
}

/**
 * End-game duplicates an idle peer is asked for at once: each one is a block one of the two
 * senders sends for nothing, so a few at a time, and only to peers with nothing else to do.
 */
export const END_GAME_BLOCKS = 2

const NONE: ReadonlyArray<never> = []
const NO_CONTEXT: PickContext = {}

export class Picker<R extends Requester = Requester> {
  readonly availability: Uint32Array
  readonly partial = new Map<number, PieceState<R>>()
  /** Blocks in a full piece: what `blockKey` counts in. */
  readonly blocksPerPiece: number
  /** Connected peers with every piece (counted in `availability` too). */
  seeds = 0
  private haveCount: number

  /** `have` is the picker's own from here on: `markHave` sets its bits. */
  constructor(
    readonly pieceCount: number,
    readonly pieceLength: number,
    readonly totalLength: number,
    readonly have: Bitfield.Bitfield,
    private readonly random: () => number = Math.random
  ) {
    this.availability = new Uint32Array(pieceCount)
    this.blocksPerPiece = Math.ceil(pieceLength / BLOCK)
    this.haveCount = Bitfield.count(have)
  }

  /**
   * A number naming one block of the torrent, unique for any piece size; -1 (matching no block)
   * for an offset that is not a block's start within a piece.
   */
  blockKey(piece: number, begin: number): number {
    return begin < this.pieceLength && begin % BLOCK === 0 ? piece * this.blocksPerPiece + begin / BLOCK : -1
  }

  has(piece: number): boolean {
    return Bitfield.has(this.have, piece)
  }

  get complete(): boolean {
    return this.haveCount === this.pieceCount
  }

  get count(): number {
    return this.haveCount
  }

  pieceSize(piece: number): number {
    return Metainfo.pieceSize(this, piece)
  }

  markHave(piece: number): void {
    if (this.has(piece)) return
    Bitfield.set(this.have, piece)
    this.haveCount++
    this.partial.delete(piece)
  }

  /** A peer has one more piece (a `have`); `bits` (its pieces, this one set) tells when it is a seed. */
  addPiece(piece: number, bits?: Bitfield.Bitfield): void {
    this.availability[piece]!++
    if (bits !== undefined && Bitfield.isComplete(bits)) this.seeds++
  }

  /** A peer's whole bitfield (or all pieces) joins (+1) or leaves (-1) the swarm's counts. */
  addAvailability(bits: Bitfield.Bitfield | "all", delta: 1 | -1): void {
    if (bits === "all" || Bitfield.isComplete(bits)) this.seeds += delta
    for (let i = 0; i < this.pieceCount; i++)
      if (bits === "all" || Bitfield.has(bits, i)) this.availability[i]! += delta
  }

  /** Every block of every missing piece is requested (or in): the end game may start. */
  get allRequested(): boolean {
    if (this.pieceCount - this.haveCount > this.partial.size) return false
    for (const state of this.partial.values()) if (!state.hashing && state.unrequested > 0) return false
    return true
  }

  private start(piece: number): PieceState<R> {
    const size = this.pieceSize(piece)
    const blocks = Math.ceil(size / BLOCK)
    const state: PieceState<R> = {
      piece,
      size,
      blocks,
      state: new Uint8Array(blocks),
      requesters: new Array(blocks),
      unrequested: blocks,
      missing: blocks,
      hashing: false
    }
    this.partial.set(piece, state)
    return state
  }

  private take(state: PieceState<R>, who: R, want: number, out: Array<Pick>): number {
    for (let b = 0; b < state.blocks && want > 0; b++) {
      if (state.state[b] !== 0) continue
      state.state[b] = 1
      state.requesters[b] = [who]
      state.unrequested--
      want--
      out.push({ piece: state.piece, begin: b * BLOCK, length: Math.min(BLOCK, state.size - b * BLOCK) })
    }
    return want
  }

  /** Up to `want` blocks to request from a peer that has the pieces `peerHas` says it has. */
  pick(who: R, peerHas: (piece: number) => boolean, want: number, context = NO_CONTEXT): Array<Pick> {
    const out: Array<Pick> = []
    // From a seed, not the rest of a piece another peer has while some piece is on seeds only:
    // an initial seeder refuses it, and the refusal takes a place in its queue for a round trip.
    const seed = context.seed === true
    let seedsOnly: boolean | undefined
    for (const state of this.partial.values()) {
      if (want === 0) return out
      if (state.hashing || state.unrequested === 0 || !peerHas(state.piece)) continue
      if (seed && this.availability[state.piece]! > this.seeds && (seedsOnly ??= this.onSeedsOnly(peerHas)))
        continue
      want = this.take(state, who, want, out)
    }
    if (context.suggested !== undefined)
      for (const piece of context.suggested) {
        if (want === 0) return out
        if (piece >= this.pieceCount || this.has(piece) || this.partial.has(piece) || !peerHas(piece))
          continue
        want = this.take(this.start(piece), who, want, out)
      }
    if (context.suggestedOnly === true) return out
    while (want > 0) {
      const best = this.rarest(peerHas, seed)
      if (best < 0) break
      want = this.take(this.start(best), who, want, out)
    }
    if (want > 0 && (context.busy ?? 0) === 0 && out.length === 0 && this.allRequested)
      this.endGame(who, peerHas, Math.min(want, END_GAME_BLOCKS), out)
    return out
  }

  /** Some missing piece the peer has (started or not) is on seeds only. */
  private onSeedsOnly(peerHas: (piece: number) => boolean): boolean {
    for (let i = 0; i < this.pieceCount; i++)
      if (!this.has(i) && this.availability[i]! <= this.seeds && peerHas(i)) return true
    return false
  }

  /**
   * The rarest piece the peer has that nobody is fetching yet, ties broken by a random start; -1
   * if none. From a seed, -1 rather than a piece another peer has while some missing piece
   * (started or not) is on seeds only: the seed's link is for those.
   */
  private rarest(peerHas: (piece: number) => boolean, fromSeed: boolean): number {
    let best = -1
    let bestAvailability = Infinity
    let onSeedsOnly = false
    // Every seed has every piece: nothing is rarer than a piece on seeds only.
    const floor = Math.max(1, this.seeds)
    const n = this.pieceCount
    const offset = Math.floor(this.random() * n)
    for (let k = 0; k < n; k++) {
      const i = (k + offset) % n
      if (this.has(i) || !peerHas(i)) continue
      const a = this.availability[i]!
      if (a <= this.seeds) onSeedsOnly = true
      if (this.partial.has(i)) continue
      if (a < bestAvailability) {
        best = i
        bestAvailability = a
        if (a <= floor && (onSeedsOnly || !fromSeed)) break
      }
    }
    return fromSeed && onSeedsOnly && bestAvailability > this.seeds ? -1 : best
  }

  /** End game: everything is requested; ask this (idle) peer too for blocks others still owe. */
  private endGame(who: R, peerHas: (piece: number) => boolean, want: number, out: Array<Pick>): void {
    for (const state of this.partial.values()) {
      if (want === 0) return
      if (state.hashing || !peerHas(state.piece)) continue
      for (let b = 0; b < state.blocks && want > 0; b++) {
        const requesters = state.requesters[b]
        if (
          state.state[b] !== 1 ||
          requesters === undefined ||
          requesters.includes(who) ||
          requesters.length > 1
        )
          continue
        requesters.push(who)
        want--
        out.push({ piece: state.piece, begin: b * BLOCK, length: Math.min(BLOCK, state.size - b * BLOCK) })
      }
    }
  }

  /**
   * A block arrived from `who`. Returns the peers it was asked of (`who` among them, to skip; the
   * others are to cancel; no copy: the picker lets go of the array), empty if nobody is waiting
   * for it any more, or `undefined` if it was not wanted (a duplicate, or a piece we already have).
   */
  received(who: R, piece: number, begin: number, length: number): ReadonlyArray<R> | undefined {
    const state = this.partial.get(piece)
    if (state === undefined || state.hashing || begin % BLOCK !== 0) return undefined
    const b = begin / BLOCK
    if (b >= state.blocks || state.state[b] === 2) return undefined
    if (length !== Math.min(BLOCK, state.size - begin)) return undefined
    const requesters = state.requesters[b]
    if (state.state[b] === 0) state.unrequested--
    state.state[b] = 2
    state.requesters[b] = undefined
    state.missing--
    return requesters ?? NONE
  }

  /** The block will not come from `who` (choked, rejected, disconnected, or its write failed). */
  abandon(who: R, piece: number, begin: number): void {
    const state = this.partial.get(piece)
    if (state === undefined) return
    const b = begin / BLOCK
    const requesters = state.requesters[b]
    if (requesters === undefined) return
    const at = requesters.indexOf(who)
    if (at >= 0) requesters.splice(at, 1)
    if (requesters.length === 0 && state.state[b] === 1) {
      state.state[b] = 0
      state.requesters[b] = undefined
      state.unrequested++
    }
  }

  /** A received block is lost after all (its write was refused): fetch it again. */
  unreceive(piece: number, begin: number): void {
    const state = this.partial.get(piece)
    if (state === undefined || state.hashing) return
    const b = begin / BLOCK
    if (state.state[b] !== 2) return
    state.state[b] = 0
    state.unrequested++
    state.missing++
  }

  /** A piece failed its hash: every block is fetched again. */
  reset(piece: number): void {
    const state = this.partial.get(piece)
    if (state === undefined) return
    state.state.fill(0)
    state.requesters.fill(undefined)
    state.unrequested = state.blocks
    state.missing = state.blocks
    state.hashing = false
  }
}
