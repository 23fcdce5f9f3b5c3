// Cut-through: a target passes on a piece coming from a seed while it arrives, not once it is
// whole. In a deploy every target's link carries the whole image at the seeder's rate, and the
// seeder sends each of N targets its pieces at 1/N of its link: whole-piece forwarding leaves
// every target with nothing to pass on for N piece-times (5 s for 1 MiB pieces, 16 targets at
// 25 Mbit/s) and the targets' links idle meanwhile, time the deploy never gets back. So on the
// first block of a piece from a seed we announce it (HAVE) to the ezio peers that lack it, and
// serve their requests block by block as the blocks arrive (upload.ts waits for a block not in
// yet). Every receiver still hashes the whole piece before it keeps or announces it itself, so
// nothing unverified is ever kept; a piece that fails here is fetched again, and what its
// receivers got of it fails there too. Other clients are told only of verified pieces. The last
// piece is never announced early: a peer that seems to have every piece is taken for a seed.
// Plain JS: per block received and per request served.
import { BLOCK } from "./picker.js"

export class CutThrough {
  /** 1 for a piece announced before it was verified (until it is). */
  private readonly promised: Uint8Array
  private promisedCount = 0
  /** Pieces to announce once the batch that brought their first block is with the disk. */
  private pending: Array<number> = []
  /** Uploads waiting for blocks of a promised piece, per piece. */
  private readonly waiters = new Map<number, Array<() => void>>()
  /**
   * Per promised piece, its blocks that are with the disk (readable). Received is not enough: a
   * connection hands its blocks to the disk once per event-loop turn, and a read before that would
   * find the old bytes.
   */
  private readonly written = new Map<number, Uint8Array>()

  constructor(
    readonly pieceCount: number,
    private readonly blocksIn: (piece: number) => number
  ) {
    this.promised = new Uint8Array(pieceCount)
  }

  /** A block of a promised `piece` at `offset` is with the disk. */
  wrote(piece: number, offset: number): void {
    let blocks = this.written.get(piece)
    if (blocks === undefined) this.written.set(piece, (blocks = new Uint8Array(this.blocksIn(piece))))
    blocks[Math.floor(offset / BLOCK)] = 1
  }

  /** The block at `offset` of `piece` is to be fetched again (its data was bad, or lost). */
  forget(piece: number, offset: number): void {
    const blocks = this.written.get(piece)
    if (blocks !== undefined) blocks[Math.floor(offset / BLOCK)] = 0
  }

  /** Every block of `piece` is to be fetched again (it failed its hash). */
  reset(piece: number): void {
    this.written.delete(piece)
  }

  /** `length` bytes at `begin` of a promised `piece` are with the disk. */
  readable(piece: number, begin: number, length: number): boolean {
    const blocks = this.written.get(piece)
    if (blocks === undefined) return false
    const last = Math.ceil((begin + length) / BLOCK)
    for (let b = Math.floor(begin / BLOCK); b < last; b++) if (blocks[b] !== 1) return false
    return true
  }

  /** `piece` was announced before it was verified: its requests are served as its blocks come. */
  isPromised(piece: number): boolean {
    return this.promised[piece] === 1
  }

  /** Pieces announced and not verified yet. */
  get promisedPieces(): number {
    return this.promisedCount
  }

  /**
   * A block of `piece` arrived from a seed; `have` pieces are verified. Returns nothing: the piece
   * is announced by `flush` once its block is with the disk (readable).
   */
  fromSeed(piece: number, have: number): void {
    if (this.promised[piece] === 1 || have + this.promisedCount + 1 >= this.pieceCount) return
    this.promised[piece] = 1
    this.promisedCount++
    this.pending.push(piece)
  }

  /** The pieces to announce now (their first blocks are readable); empty most of the time. */
  flush(): ReadonlyArray<number> {
    if (this.pending.length === 0) return NONE
    const out = this.pending
    this.pending = []
    return out
  }

  /** `piece` passed its hash: it is ours, no longer a promise. */
  verified(piece: number): void {
    if (this.promised[piece] === 1) {
      this.promised[piece] = 0
      this.promisedCount--
    }
    this.written.delete(piece)
    this.wake(piece)
  }

  /** Calls `f` once more blocks of `piece` are readable (or it is verified). */
  whenReadable(piece: number, f: () => void): void {
    const list = this.waiters.get(piece)
    if (list === undefined) this.waiters.set(piece, [f])
    else list.push(f)
  }

  /** Blocks of `piece` are now readable: the uploads waiting for them go on. */
  wake(piece: number): void {
    if (this.waiters.size === 0) return
    const list = this.waiters.get(piece)
    if (list === undefined) return
    this.waiters.delete(piece)
    for (const f of list) f()
  }

  /** Any upload waiting at all (the swarm skips the per-batch wake-ups without). */
  get waiting(): boolean {
    return this.waiters.size > 0
  }
}

const NONE: ReadonlyArray<number> = []
