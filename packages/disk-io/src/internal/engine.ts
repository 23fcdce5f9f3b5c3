/**
 * The engine context: the state reads, writes and hashes share (pool, hasher, store buffer,
 * gates, torrents, counters), the helpers they all use (errors, blocks, waiting for writes), and
 * `Job`, the one bracket for a read's or hash's bookkeeping.
 *
 * @internal
 */
import type { BufferPool } from "@ezio/pool"
import type { Hasher, Storage } from "@ezio/storage"
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
import * as Scope from "effect/Scope"
import { DiskIoError, type Operation } from "../DiskIoError.js"
import { Gate } from "./gate.js"
import type { JobCounts, JobKind, Stats, TorrentHandle } from "./models.js"
import { jobKinds } from "./models.js"
import type { Resolved } from "./options.js"
import {
  type Counts,
  type Entry,
  makeCounts,
  type PieceState,
  type RecordedError,
  StoreBuffer,
  TorrentState
} from "./storeBuffer.js"

/** The mask's `restore`, as jobs pass it down. */
export type Restore = <A, E, R>(effect: Effect.Effect<A, E, R>) => Effect.Effect<A, E, R>

/** @internal */
export interface Where {
  readonly piece?: number
  readonly offset?: number
  readonly length?: number
  readonly cause?: unknown
  readonly detail?: string
}

/** @internal */
export const errorOf = (
  t: { readonly id: number; readonly name: string },
  reason: DiskIoError["reason"],
  operation: Operation,
  where: Where = {}
): DiskIoError => new DiskIoError({ reason, operation, torrent: t.id, name: t.name, ...where })

/** @internal */
export const writeFailed = (
  t: TorrentState,
  operation: Operation,
  piece: number,
  error: RecordedError
): DiskIoError =>
  errorOf(t, "WriteFailed", operation, {
    piece,
    offset: error.offset,
    length: error.length,
    cause: error.cause
  })

/** @internal */
export const poolError = (
  t: TorrentState,
  operation: Operation,
  piece: number,
  cause: BufferPool.PoolClosed | BufferPool.PoolExhausted
): DiskIoError => errorOf(t, "Pool", operation, { piece, cause })

/** @internal */
export const badPiece = (t: TorrentState, piece: number): boolean =>
  !Number.isInteger(piece) || piece < 0 || piece >= t.layout.pieceCount

/** @internal */
export const releaseAll = (blocks: ReadonlyArray<BufferPool.Block>): void => {
  for (const block of blocks) if (!block.released) block.release()
}

/**
 * Calls a storage's callback request (`Storage.Read.unsafe`, `Storage.Write.unsafe`): a throw
 * from the storage's own code before it answered is what a defect of its Effect would be.
 *
 * @internal
 */
export const callUnsafe = (
  unsafe: NonNullable<Storage.Read["unsafe"]>,
  piece: number,
  offset: number,
  buffers: ReadonlyArray<Uint8Array>,
  onExit: (exit: Exit.Exit<void, unknown>) => void
): void => {
  let answered = false
  try {
    unsafe(piece, offset, buffers, (exit) => {
      answered = true
      onExit(exit)
    })
  } catch (defect) {
    if (answered) throw defect
    onExit(Exit.die(defect))
  }
}

/**
 * What an engine's jobs share.
 *
 * @internal
 */
export class Engine {
  readonly blockSize: number
  readonly store: StoreBuffer
  /** Storage jobs in flight: reads, write batches, the reads of hashes. */
  readonly io: Gate
  readonly hashGate: Gate
  readonly torrents = new Map<number, TorrentState>()
  nextTorrent = 0
  closed = false
  readonly jobs: Record<JobKind, Counts>
  /** Jobs in plain code (`unsafeHash`) not yet answered: closing the engine waits for them. */
  callbackJobs = 0
  bytesRead = 0
  bytesHashed = 0
  syncs = 0

  constructor(
    readonly pool: BufferPool.BufferPoolService,
    readonly hasher: Hasher.HasherService,
    readonly config: Resolved,
    /**
     * Holds the blocks the engine owns between requests (pending writes, reads on their way out):
     * closed last, after the writes drain, so nothing outlives the engine.
     */
    readonly holdScope: Scope.Scope
  ) {
    this.blockSize = config.blockSize
    const write = makeCounts()
    this.jobs = { read: makeCounts(), write, hash: makeCounts() }
    this.store = new StoreBuffer(
      config.blockSize,
      config.maxWriteBlocks,
      config.writeCoalesceBlocks,
      pool.unsafeIsExceeded,
      write,
      config.maxQueuedBlocks,
      config.resumeQueuedBlocks
    )
    this.io = new Gate(config.aioThreads)
    this.hashGate = new Gate(config.hashThreads)
  }

  /** The torrent behind a handle, or why a job on it is refused. */
  lookup(handle: TorrentHandle, operation: Operation): TorrentState | DiskIoError {
    if (!(handle instanceof TorrentState) || handle.owner !== this) {
      return errorOf(handle, "UnknownTorrent", operation)
    }
    if (this.closed) return errorOf(handle, "Closed", operation)
    if (handle.removed) return errorOf(handle, "TorrentRemoved", operation)
    return handle
  }

  /** `count` blocks at once without waiting, or none. */
  tryTakeN(count: number, category: BufferPool.Category): Array<BufferPool.Block> | undefined {
    const out: Array<BufferPool.Block> = []
    for (let i = 0; i < count; i++) {
      const block = this.pool.unsafeTryAcquire(category)
      if (block === undefined) {
        releaseAll(out)
        return undefined
      }
      out.push(block)
    }
    return out
  }

  /**
   * The slow path, inside an uninterruptible region: waits (interruptibly) in the pool's queue
   * into a scope of its own, so an interruption at any point gives the blocks back.
   */
  takeBlocksSlow(
    count: number,
    category: BufferPool.Category,
    restore: Restore
  ): Effect.Effect<Array<BufferPool.Block>, BufferPool.PoolClosed | BufferPool.PoolExhausted> {
    return Effect.flatMap(Scope.make(), (waitScope) =>
      restore(this.pool.acquireMany(count, category)).pipe(
        Effect.tap((acquired) => this.pool.transfer(acquired.value, this.holdScope)),
        Effect.provideService(Scope.Scope, waitScope),
        Effect.onExit((exit) => Scope.close(waitScope, exit)),
        Effect.map((acquired) => acquired.value as Array<BufferPool.Block>)
      )
    )
  }

  /** The valid part of each block for `length` bytes. */
  viewsOf(blocks: ReadonlyArray<BufferPool.Block>, length: number): Array<Uint8Array> {
    const bs = this.blockSize
    const views = new Array<Uint8Array>(Math.ceil(length / bs))
    for (let i = 0; i < views.length; i++) {
      const bytes = blocks[i]!.bytes
      const n = Math.min(bs, length - i * bs)
      views[i] = n === bs ? bytes : bytes.subarray(0, n)
    }
    return views
  }

  /** Waits until every write of `piece` up to `seq` is on storage (or failed). */
  waitWrites(piece: PieceState, seq: number): Effect.Effect<void> {
    return Effect.suspend(() =>
      piece.lowest() > seq
        ? Effect.void
        : Effect.async<void>((resume) => {
            this.store.urge(piece)
            const waiter = { seq, wake: () => resume(Effect.void) }
            piece.fence.waiters.push(waiter)
            return Effect.sync(() => {
              const i = piece.fence.waiters.indexOf(waiter)
              if (i >= 0) piece.fence.waiters.splice(i, 1)
              this.store.forget(piece)
            })
          })
    )
  }

  /** Waits until `done()` holds, checked each time writes drain; held-back writes go at once. */
  drained(done: () => boolean): Effect.Effect<void> {
    return Effect.suspend(() =>
      done()
        ? Effect.void
        : Effect.async<void>((resume) => {
            const store = this.store
            store.urgeAll()
            const check = () => {
              if (!done()) return false
              resume(Effect.void)
              return true
            }
            store.drainWaiters.push(check)
            return Effect.sync(() => {
              const i = store.drainWaiters.indexOf(check)
              if (i >= 0) store.drainWaiters.splice(i, 1)
            })
          })
    )
  }

  unsafeStats(): Stats {
    const poolStats = this.pool.unsafeStats()
    const store = this.store
    const jobs = {} as Record<JobKind, JobCounts>
    for (const kind of jobKinds) jobs[kind] = { ...this.jobs[kind] }
    return {
      name: this.config.name,
      aioThreads: this.config.aioThreads,
      hashThreads: this.config.hashThreads,
      torrents: this.torrents.size,
      jobs,
      bytesRead: this.bytesRead,
      bytesReadFromStoreBuffer: store.bytesFromStore,
      bytesWritten: store.bytesWritten,
      bytesHashed: this.bytesHashed,
      storeBufferBlocks: store.storeBlocks,
      storeBufferPeak: store.storePeak,
      writeErrors: store.writeErrors,
      writeBatches: store.batches,
      syncs: this.syncs,
      poolInUse: poolStats.inUse,
      poolPeak: poolStats.peak,
      poolHardLimit: poolStats.hardLimitBlocks
    }
  }
}

/**
 * One read or hash job's bookkeeping, taken and given back in one place: its counters (queued,
 * then running, then completed or failed), the gate permit, the pool blocks, the reader snapshot
 * that holds back the piece's later writes, and the store-buffer pins. Plain code: a job calls
 * `close` once, from the one `onExit` (or `matchCauseEffect`) it already has, so the bracket adds
 * no Effect operation.
 *
 * @internal
 */
export class Job {
  private running = false
  private closed = false
  private permit: Gate | undefined = undefined
  private blocks: ReadonlyArray<BufferPool.Block> | undefined = undefined
  private reader: PieceState | undefined = undefined
  private readerSeq = 0
  private pinned: ReadonlyArray<Entry> | undefined = undefined

  /** Counts the job as queued. */
  constructor(
    private readonly store: StoreBuffer,
    private readonly counts: Counts
  ) {
    counts.queued++
  }

  /** The job has what it needs: queued → running. */
  start(): void {
    if (this.running) return
    this.running = true
    this.counts.queued--
    this.counts.running++
  }

  /** Takes a free permit of `gate` if there is one; the job gives it back. */
  tryPermit(gate: Gate): boolean {
    if (!gate.tryTake()) return false
    this.permit = gate
    return true
  }

  /** A permit of `gate` granted by `waitGate`; the job gives it back. */
  holdPermit(gate: Gate): void {
    this.permit = gate
  }

  /** Blocks the job releases unless it hands them off. */
  holdBlocks(blocks: ReadonlyArray<BufferPool.Block>): void {
    this.blocks = blocks
  }

  /** The caller owns the blocks now. */
  handOff(): void {
    this.blocks = undefined
  }

  /** Reads `piece` from storage as of `seq`: later writes of it wait until the job is done. */
  enterReader(piece: PieceState, seq: number): void {
    piece.fence.enter(seq)
    this.reader = piece
    this.readerSeq = seq
  }

  /** Entries pinned by `StoreBuffer.pinWholePiece`; the job unpins them. */
  holdPins(entries: ReadonlyArray<Entry>): void {
    this.pinned = entries
  }

  /** Gives back whatever the job still holds; the counters stay. Safe to call again. */
  release(): void {
    if (this.reader !== undefined) {
      const reader = this.reader
      this.reader = undefined
      this.store.unregisterReader(reader, this.readerSeq)
    }
    if (this.pinned !== undefined) {
      const pinned = this.pinned
      this.pinned = undefined
      this.store.unpin(pinned)
    }
    if (this.blocks !== undefined) {
      const blocks = this.blocks
      this.blocks = undefined
      releaseAll(blocks)
    }
    if (this.permit !== undefined) {
      const permit = this.permit
      this.permit = undefined
      permit.release()
    }
  }

  /** The job is over: everything back, and counted once as completed or failed. */
  close(success: boolean): void {
    this.release()
    if (this.closed) return
    this.closed = true
    if (this.running) this.counts.running--
    else this.counts.queued--
    if (success) this.counts.completed++
    else this.counts.failed++
  }
}
