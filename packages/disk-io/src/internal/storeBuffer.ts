/**
 * The store buffer (libtorrent's `store_buffer`): written blocks wait here, visible to reads,
 * until an aio fiber writes them to storage in vectored batches. Plain code, no Effect, so the
 * per-block work (lookups, copies, batch selection) costs nanoseconds.
 *
 * @internal
 */
import type { BufferPool } from "@ezio/pool"
import { Layout } from "@ezio/storage"
import type { Storage } from "@ezio/storage"
import { Fence } from "./fence.js"
import type { TorrentHandle } from "./models.js"

/** @internal */
export const QUEUED = 0
/** @internal */
export const WRITING = 1
/** @internal */
export const DONE = 2

/**
 * A job kind's counters, bumped in place.
 *
 * @internal
 */
export interface Counts {
  queued: number
  running: number
  completed: number
  failed: number
}

/** @internal */
export const makeCounts = (): Counts => ({ queued: 0, running: 0, completed: 0, failed: 0 })

/**
 * One pending write: a pool block in the store buffer, visible to reads until it reaches storage.
 *
 * @internal
 */
export class Entry {
  state: number = QUEUED
  /** Hashes reading the block in place: it goes back to the pool only after them. */
  pins = 0
  constructor(
    readonly piece: PieceState,
    readonly offset: number,
    readonly length: number,
    readonly block: BufferPool.Block,
    readonly seq: number
  ) {}
}

/** @internal */
export interface RecordedError {
  readonly cause: unknown
  readonly seq: number
  readonly offset: number
  readonly length: number
}

/**
 * What the engine knows about one piece while it has pending writes, readers or a recorded error;
 * dropped again when idle.
 *
 * @internal
 */
export class PieceState {
  /** The store buffer: the newest pending write of each block, by offset in the piece. */
  readonly store = new Map<number, Entry>()
  /** Pending writes in the order they were issued; `head` skips the finished ones. */
  readonly log: Array<Entry> = []
  head = 0
  /** Entries waiting for a storage write (not yet in a batch). */
  queued = 0
  /** A batch of this piece is being written (one at a time per piece). */
  active = false
  /** In the ready queue, or handed to a worker. */
  ready = false
  readonly fence = new Fence()
  /** The first failed write since the last `clearPiece`. */
  error: RecordedError | undefined = undefined
  /** The store buffer's `ticks` when a block last came in (`urgeStale`). */
  insertedAt = 0

  constructor(
    readonly torrent: TorrentState,
    readonly index: number,
    /** Blocks in the piece: once that many writes are queued, the piece is whole, write it. */
    readonly blocks: number
  ) {}

  /** The sequence number of the oldest write not yet on storage (Infinity if none). */
  lowest(): number {
    const log = this.log
    while (this.head < log.length && log[this.head]!.state === DONE) this.head++
    if (this.head === log.length) {
      log.length = 0
      this.head = 0
      return Infinity
    }
    if (this.head > 64 && this.head * 2 > log.length) {
      log.splice(0, this.head)
      this.head = 0
    }
    return log[this.head]!.seq
  }

  /** Is there a queued write that may be written now? */
  eligible(): boolean {
    if (this.queued === 0) return false
    const limit = this.fence.limit()
    for (let i = this.head; i < this.log.length; i++) {
      const entry = this.log[i]!
      if (entry.state === QUEUED) return entry.seq <= limit
    }
    return false
  }

  idle(): boolean {
    return (
      !this.active &&
      !this.ready &&
      this.fence.idle() &&
      this.error === undefined &&
      this.lowest() === Infinity
    )
  }

  /** Wakes waiters whose writes have all reached storage. */
  checkWaiters(): void {
    if (this.fence.waiters.length > 0) this.fence.wake(this.lowest())
  }
}

/**
 * A torrent added to an engine; the object is also the handle callers hold.
 *
 * @internal
 */
export class TorrentState implements TorrentHandle {
  readonly pieces = new Map<number, PieceState>()
  /** Writes not yet on storage. */
  outstanding = 0
  removed = false
  constructor(
    /** The engine it belongs to: a handle from another engine is refused. */
    readonly owner: object,
    readonly id: number,
    readonly name: string,
    readonly storage: Storage.StorageService,
    readonly layout: Layout.Layout
  ) {}

  toJSON(): unknown {
    return { _id: "DiskIo.Torrent", id: this.id, name: this.name, removed: this.removed }
  }
}

/**
 * The store buffer of every torrent of an engine, its write scheduling (which pieces go to the
 * aio fibers, which are held back to coalesce) and the write counters.
 *
 * @internal
 */
export class StoreBuffer {
  /** The last sequence number given to a write. */
  seq = 0
  /** Writes not yet on storage, all torrents. */
  outstanding = 0
  /** Called when writes drain; each returns true once satisfied (and is then dropped). */
  readonly drainWaiters: Array<() => boolean> = []

  private readonly readyQueue: Array<PieceState | undefined> = []
  private readyHead = 0
  /** Idle aio workers, waiting for a piece to write. */
  readonly idle: Array<(piece: PieceState) => void> = []
  /**
   * Written blocks the engine holds: in the store buffer, or kept after their write for a hash
   * reading them in place. Past `maxHeld`, writes report `exceeded`.
   */
  held = 0
  /** Called once `held` is down to `resumeHeld` (`awaitWritable`). */
  readonly heldWaiters: Array<() => void> = []

  bytesWritten = 0
  /** Bytes of reads answered from the store buffer. */
  bytesFromStore = 0
  storeBlocks = 0
  storePeak = 0
  writeErrors = 0
  batches = 0

  /**
   * Pieces with fewer queued writes than `coalesceBlocks` and nobody waiting on them: held back so
   * the blocks a peer sends one by one reach storage as a few large vectored writes instead of
   * one system call each.
   */
  private readonly deferred = new Set<PieceState>()

  constructor(
    readonly blockSize: number,
    readonly maxRun: number,
    readonly coalesceBlocks: number,
    /** True when writes must not wait: the pool past its high watermark. */
    readonly pressure: () => boolean,
    /** The write jobs' counters: one job per block. */
    readonly jobs: Counts = makeCounts(),
    readonly maxHeld = Infinity,
    readonly resumeHeld = Infinity
  ) {}

  /** More written blocks held than `maxHeld`: the peers sending them should pause. */
  heldExceeded(): boolean {
    return this.held > this.maxHeld
  }

  /**
   * Held blocks of pieces held back to coalesce: with nothing else in the way they still go
   * after `writeDelay`, so a wait for `resumeHeld` urges them instead of stalling on the timer.
   */
  deferredBlocks(): number {
    let n = 0
    for (const piece of this.deferred) n += piece.queued
    return n
  }

  /** An entry's block leaves the engine's hands (written or dropped, and no hash reads it). */
  private letGo(entry: Entry): void {
    if (!entry.block.released) entry.block.release()
    if (--this.held === this.resumeHeld && this.heldWaiters.length > 0) {
      for (const wake of this.heldWaiters.splice(0)) wake()
    }
  }

  /** Writes of `piece` must go now: a hash or `clearPiece` waits for them. */
  urge(piece: PieceState): void {
    this.deferred.delete(piece)
    this.schedule(piece, true)
  }

  /** Every held-back write goes now: a flush, the engine closing, memory pressure. */
  urgeAll(): void {
    if (this.deferred.size === 0) return
    const pieces = Array.from(this.deferred)
    this.deferred.clear()
    for (const piece of pieces) this.schedule(piece, true)
  }

  /** Timer ticks so far (`urgeStale`); an insert stamps its piece with it. */
  private ticks = 0

  /**
   * The timer's tick, every half `writeDelay`: the held-back writes of pieces no block came in for
   * since the tick before last go now (a peer went away mid-piece), between half a `writeDelay`
   * and one after the last block. A piece still arriving stays held until it is whole: written
   * in part, its blocks would leave the store buffer and its hash would read it back from storage
   * (on a hashing worker, started for it) instead of in place.
   */
  urgeStale(): void {
    this.ticks++
    if (this.deferred.size === 0) return
    const stale: Array<PieceState> = []
    for (const piece of this.deferred) if (this.ticks - piece.insertedAt >= 2) stale.push(piece)
    for (const piece of stale) this.urge(piece)
  }

  piece(torrent: TorrentState, index: number): PieceState {
    let piece = torrent.pieces.get(index)
    if (piece === undefined) {
      piece = new PieceState(
        torrent,
        index,
        Math.ceil(Layout.pieceSize(torrent.layout, index) / this.blockSize)
      )
      torrent.pieces.set(index, piece)
    }
    return piece
  }

  forget(piece: PieceState): void {
    if (piece.torrent.pieces.get(piece.index) === piece && piece.idle()) {
      piece.torrent.pieces.delete(piece.index)
    }
  }

  /** Puts a written block in the store buffer and queues it for storage. */
  insert(piece: PieceState, offset: number, length: number, block: BufferPool.Block): Entry {
    const entry = new Entry(piece, offset, length, block, ++this.seq)
    piece.insertedAt = this.ticks
    piece.log.push(entry)
    piece.queued++
    // A newer write of the same block supersedes the older one for readers; both still reach
    // storage, in order, so the last write wins there too.
    piece.store.set(offset, entry)
    piece.torrent.outstanding++
    this.outstanding++
    this.held++
    this.storeBlocks++
    if (this.storeBlocks > this.storePeak) this.storePeak = this.storeBlocks
    this.jobs.queued++
    this.schedule(piece)
    return entry
  }

  schedule(piece: PieceState, urgent = false): void {
    if (piece.active || piece.ready || !piece.eligible()) return
    if (
      !urgent &&
      piece.queued < this.coalesceBlocks &&
      piece.queued < piece.blocks &&
      piece.fence.waiters.length === 0 &&
      this.drainWaiters.length === 0 &&
      !this.pressure()
    ) {
      this.deferred.add(piece)
      return
    }
    this.deferred.delete(piece)
    piece.ready = true
    const worker = this.idle.pop()
    if (worker !== undefined) {
      this.claim(piece)
      worker(piece)
    } else this.readyQueue.push(piece)
  }

  /** The next piece for an idle worker, if any. */
  takeReady(): PieceState | undefined {
    if (this.readyHead >= this.readyQueue.length) return undefined
    const piece = this.readyQueue[this.readyHead]!
    this.readyQueue[this.readyHead++] = undefined
    if (this.readyHead === this.readyQueue.length) {
      this.readyQueue.length = 0
      this.readyHead = 0
    }
    this.claim(piece)
    return piece
  }

  private claim(piece: PieceState): void {
    piece.ready = false
    piece.active = true
  }

  /**
   * The writes of `piece` to do now, in issue order: queued ones not held back by a reader, at
   * most one per block (a second write of the same block goes in the next batch, after it).
   */
  selectBatch(piece: PieceState): Array<Entry> {
    const limit = piece.fence.limit()
    const out: Array<Entry> = []
    const seen = new Set<number>()
    const log = piece.log
    for (let i = piece.head; i < log.length; i++) {
      const entry = log[i]!
      if (entry.state !== QUEUED) continue
      if (entry.seq > limit || seen.has(entry.offset) || out.length >= this.maxRun * 4) break
      seen.add(entry.offset)
      entry.state = WRITING
      out.push(entry)
    }
    piece.queued -= out.length
    this.jobs.queued -= out.length
    this.jobs.running += out.length
    if (out.length > 0) this.batches++
    return out
  }

  /** Splits a batch into runs of adjacent blocks, each one vectored storage write. */
  runs(batch: Array<Entry>): Array<Array<Entry>> {
    const sorted = batch.length > 1 ? batch.slice().sort((a, b) => a.offset - b.offset) : batch
    const out: Array<Array<Entry>> = []
    let run: Array<Entry> = []
    for (const entry of sorted) {
      const last = run[run.length - 1]
      if (last !== undefined && (last.offset + last.length !== entry.offset || run.length >= this.maxRun)) {
        out.push(run)
        run = []
      }
      run.push(entry)
    }
    if (run.length > 0) out.push(run)
    return out
  }

  /** A run reached storage (or failed): out of the store buffer, blocks back to the pool. */
  complete(run: Array<Entry>, error: unknown): void {
    // Last block first (here and in `unpin`): the pool hands out its most recently freed block
    // next, so a piece downloaded next gets these blocks back in address order, back to back,
    // and its hash and write see one contiguous run instead of one view per block.
    for (let i = run.length - 1; i >= 0; i--) {
      const entry = run[i]!
      if (entry.state === DONE) continue
      this.finish(entry)
      this.jobs.running--
      if (error === undefined) {
        this.jobs.completed++
        this.bytesWritten += entry.length
      } else this.jobs.failed++
    }
    if (error !== undefined) {
      this.writeErrors++
      const piece = run[0]!.piece
      if (piece.error === undefined) {
        const first = run[0]!
        let length = 0
        for (const entry of run) length += entry.length
        piece.error = { cause: error, seq: first.seq, offset: first.offset, length }
      }
    }
  }

  private finish(entry: Entry): void {
    entry.state = DONE
    const piece = entry.piece
    if (piece.store.get(entry.offset) === entry) piece.store.delete(entry.offset)
    if (entry.pins === 0) this.letGo(entry)
    this.storeBlocks--
    piece.torrent.outstanding--
    this.outstanding--
    if (piece.torrent.outstanding === 0 || this.outstanding === 0) this.checkDrained()
  }

  /** A batch is over: wake waiters, write what came in meanwhile, forget an idle piece. */
  batchDone(piece: PieceState): void {
    piece.active = false
    piece.checkWaiters()
    this.schedule(piece)
    this.forget(piece)
  }

  /** `clearPiece`: drops the piece's writes that have not started (they never reach storage). */
  dropQueued(piece: PieceState): number {
    let dropped = 0
    for (let i = piece.head; i < piece.log.length; i++) {
      const entry = piece.log[i]!
      if (entry.state !== QUEUED) continue
      this.finish(entry)
      this.jobs.queued--
      dropped++
    }
    piece.queued = 0
    piece.checkWaiters()
    return dropped
  }

  /** A reader of `piece` from storage is done: its later writes may go. */
  unregisterReader(piece: PieceState, seq: number): void {
    piece.fence.leave(seq)
    this.schedule(piece)
    this.forget(piece)
  }

  /** Runs the drain waiters: writes drained, or something else they wait for ended. */
  checkDrained(): void {
    const waiters = this.drainWaiters
    for (let i = 0; i < waiters.length;) {
      if (waiters[i]!()) waiters.splice(i, 1)
      else i++
    }
  }

  /**
   * Copies the store buffer's pending writes that overlap `[offset, offset + length)` of the piece
   * into `views` (the request's bytes, `blockSize` per view), and returns the ranges it did not
   * cover as flat `[start, end, start, end, ...]` piece offsets, merged where adjacent.
   */
  overlay(
    piece: PieceState | undefined,
    offset: number,
    length: number,
    views: ReadonlyArray<Uint8Array>
  ): Array<number> {
    const end = offset + length
    if (piece === undefined || piece.store.size === 0) return [offset, end]
    const bs = this.blockSize
    const misses: Array<number> = []
    let copied = 0
    for (let block = Math.floor(offset / bs) * bs; block < end; block += bs) {
      const from = Math.max(offset, block)
      const to = Math.min(end, block + bs)
      const entry = piece.store.get(block)
      if (entry === undefined || entry.offset + entry.length < to) {
        if (misses.length > 0 && misses[misses.length - 1] === from) misses[misses.length - 1] = to
        else misses.push(from, to)
        continue
      }
      copyInto(views, bs, from - offset, entry.block.bytes.subarray(from - block, to - block))
      copied += to - from
    }
    this.bytesFromStore += copied
    return misses
  }

  /**
   * When every block of the piece is in the store buffer (a piece just downloaded), pins those
   * entries so their blocks stay out of the pool until `unpin`, even once written: a hash then
   * reads them in place, with no copy and no read back from storage.
   */
  pinWholePiece(t: TorrentState, index: number): Array<Entry> | undefined {
    const piece = t.pieces.get(index)
    if (piece === undefined || piece.store.size === 0) return undefined
    const size = Layout.pieceSize(t.layout, index)
    const bs = this.blockSize
    const entries: Array<Entry> = []
    for (let offset = 0; offset < size; offset += bs) {
      const entry = piece.store.get(offset)
      if (entry === undefined || entry.length !== Math.min(bs, size - offset)) return undefined
      entries.push(entry)
    }
    for (const entry of entries) entry.pins++
    return entries
  }

  unpin(entries: ReadonlyArray<Entry>): void {
    for (let i = entries.length - 1; i >= 0; i--) {
      const entry = entries[i]!
      if (--entry.pins === 0 && entry.state === DONE) this.letGo(entry)
    }
  }
}

/** Copies `source` into the request's views starting at request byte `at`. */
const copyInto = (views: ReadonlyArray<Uint8Array>, bs: number, at: number, source: Uint8Array): void => {
  let done = 0
  while (done < source.length) {
    const view = views[Math.floor((at + done) / bs)]!
    const within = (at + done) % bs
    const n = Math.min(source.length - done, view.length - within)
    view.set(done === 0 && n === source.length ? source : source.subarray(done, done + n), within)
    done += n
  }
}

/**
 * The views covering request bytes `[from, to)` (relative to the request's start), for a
 * vectored storage read.
 *
 * @internal
 */
export const sliceViews = (
  views: ReadonlyArray<Uint8Array>,
  bs: number,
  from: number,
  to: number
): Array<Uint8Array> => {
  const out: Array<Uint8Array> = []
  let at = from
  while (at < to) {
    const view = views[Math.floor(at / bs)]!
    const within = at % bs
    const n = Math.min(to - at, view.length - within)
    out.push(within === 0 && n === view.length ? view : view.subarray(within, within + n))
    at += n
  }
  return out
}
