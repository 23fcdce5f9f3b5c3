/**
 * The disk job engine (libtorrent's `disk_interface`): reads, writes and hashes of many torrents
 * sharing one `BufferPool`, with a store buffer that makes a written block visible to reads before
 * it reaches storage, per-piece ordering, bounded concurrency, and watermark backpressure.
 *
 * @since 0.1.0
 */
import { BufferPool } from "@ezio/pool"
import { Hasher, Layout, type Storage, type StorageError } from "@ezio/storage"
import * as Cause from "effect/Cause"
import * as Context from "effect/Context"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as ExecutionStrategy from "effect/ExecutionStrategy"
import * as Layer from "effect/Layer"
import * as Metric from "effect/Metric"
import * as Schedule from "effect/Schedule"
import * as Scope from "effect/Scope"
import { DiskIoError, type Operation } from "./DiskIoError.js"
import {
  EngineCore,
  type Entry,
  Gate,
  type JobKind,
  jobKinds,
  type PieceState,
  type RecordedError,
  sliceViews,
  TorrentState
} from "./internal/core.js"

export { DiskIoError } from "./DiskIoError.js"

/**
 * @since 0.1.0
 * @category models
 */
export interface Options {
  /**
   * Storage jobs (reads, write batches, the reads of hashes) in flight at once: libtorrent's
   * `aio_threads`. Default 4.
   */
  readonly aioThreads?: number
  /** Hash jobs at once: libtorrent's `hashing_threads`. Default: the hasher's threads (at least 1). */
  readonly hashThreads?: number
  /**
   * Blocks a hash reads (and sends to a hashing thread) per step; a 16 MiB piece is hashed in
   * steps so it never holds 16 MiB of the pool. Rounded up to a multiple of 16 KiB. Default 64.
   */
  readonly hashChunkBlocks?: number
  /** Most blocks per vectored storage write. Default 64. */
  readonly maxWriteBlocks?: number
  /**
   * A piece's writes wait in the store buffer until this many are queued (or the piece is whole),
   * so blocks arriving one by one reach storage as a few large vectored writes. They go at once
   * when anyone waits for them (a hash, `clearPiece`, `flush`, closing), when the pool is past its
   * high watermark, and after at most `writeDelay` otherwise. 1 writes every block at once.
   * Default 64 (1 MiB): a piece of up to 1 MiB is written at once, whole, and its hash reads
   * the blocks in place from the store buffer instead of reading the piece back.
   */
  readonly writeCoalesceBlocks?: number
  /** The longest a held-back write waits. Default 100 millis. */
  readonly writeDelay?: Duration.DurationInput
  /** Names the engine in metric tags and logs. Default "default". */
  readonly name?: string
}

/**
 * A torrent added to the engine. Jobs take it as their first argument.
 *
 * @since 0.1.0
 * @category models
 */
export interface TorrentHandle {
  readonly id: number
  readonly name: string
  readonly layout: Layout.Layout
  readonly storage: Storage.StorageService
}

/**
 * A finished read: `length` bytes in `blocks`, `blockSize` bytes per block except the last;
 * `views[i]` is the valid part of `blocks[i]`. Whoever holds it releases the blocks, with
 * `release()` or `Block.release()` one by one (in the socket's write callback, say).
 *
 * @since 0.1.0
 * @category models
 */
export interface Read {
  readonly blocks: ReadonlyArray<BufferPool.Block>
  readonly views: ReadonlyArray<Uint8Array>
  readonly length: number
  /** Releases every block not released yet. */
  release(): void
}

/**
 * A write is in the store buffer: `exceeded` is true when the pool is past its high watermark,
 * and the peer that sent the block should stop reading its socket until `pool.awaitNormal`.
 *
 * @since 0.1.0
 * @category models
 */
export interface Written {
  readonly exceeded: boolean
}

/**
 * @since 0.1.0
 * @category models
 */
export interface HashOptions {
  /** Also return SHA-256 of each 16 KiB block of the piece (BEP 52 leaf hashes). */
  readonly v2?: boolean
}

/**
 * @since 0.1.0
 * @category models
 */
export interface Hashed {
  /** SHA-1 of the whole piece (v1). */
  readonly sha1: Uint8Array
  /** With `v2`: SHA-256 of each 16 KiB block, the last one short. */
  readonly blockHashes?: ReadonlyArray<Uint8Array>
}

/**
 * @since 0.1.0
 * @category models
 */
export type { JobKind } from "./internal/core.js"

/**
 * Jobs of one kind. For writes, a job is one block: queued in the store buffer, or being written.
 *
 * @since 0.1.0
 * @category models
 */
export interface JobCounts {
  readonly queued: number
  readonly running: number
  readonly completed: number
  readonly failed: number
}

/**
 * A snapshot of the engine's counters, for observability only.
 *
 * @since 0.1.0
 * @category models
 */
export interface Stats {
  readonly name: string
  readonly aioThreads: number
  readonly hashThreads: number
  readonly torrents: number
  readonly jobs: Readonly<Record<JobKind, JobCounts>>
  readonly bytesRead: number
  /** Of `bytesRead`, served from pending writes in the store buffer. */
  readonly bytesReadFromStoreBuffer: number
  readonly bytesWritten: number
  readonly bytesHashed: number
  /** Written blocks not on storage yet (each holds one pool block). */
  readonly storeBufferBlocks: number
  readonly storeBufferPeak: number
  readonly writeErrors: number
  /** Storage write batches (each one or more vectored writes of adjacent blocks). */
  readonly writeBatches: number
  readonly poolInUse: number
  readonly poolPeak: number
  readonly poolHardLimit: number
}

/**
 * The engine.
 *
 * Ordering and visibility:
 * - a write is visible to every read that starts after `write` returned (store buffer first, then
 *   storage), and reaches storage on the aio fibers, after the piece's earlier writes;
 * - `hash` runs after every write of its piece issued before it, and fails if one of them failed;
 * - jobs on different pieces run in parallel, at most `aioThreads` storage jobs and `hashThreads`
 *   hashes at once.
 *
 * Memory: every buffer is a pool block. Reads and hashes wait for blocks at the pool's hard limit;
 * writes bring their own block and report the watermark state.
 *
 * @since 0.1.0
 * @category models
 */
export interface DiskIoService {
  readonly name: string
  readonly blockSize: number
  /** Adds a torrent whose data lives in `storage`. */
  readonly addTorrent: (
    storage: Storage.StorageService,
    options?: { readonly name?: string }
  ) => Effect.Effect<TorrentHandle, DiskIoError>
  /**
   * Drains the torrent's pending writes, releases its files and forgets it; jobs issued after it
   * began fail with `TorrentRemoved`. Fails with `WriteFailed` if a pending write failed (the
   * torrent is removed all the same).
   */
  readonly removeTorrent: (torrent: TorrentHandle) => Effect.Effect<void, DiskIoError>
  /**
   * Reads `length` bytes at `offset` in `piece` (any alignment) into pool blocks (category "read")
   * owned by the caller's scope. Waits for blocks at the pool's hard limit.
   */
  readonly read: (
    torrent: TorrentHandle,
    piece: number,
    offset: number,
    length: number
  ) => Effect.Effect<Read, DiskIoError, Scope.Scope>
  /**
   * The hot-path read: as `read`, but the caller owns the blocks and must release them; no scope,
   * one Effect per request. If the read fails or is interrupted the engine releases them. (Were an
   * interruption to land exactly as it returns, the engine keeps them until it closes.)
   */
  readonly readOwned: (
    torrent: TorrentHandle,
    piece: number,
    offset: number,
    length: number
  ) => Effect.Effect<Read, DiskIoError>
  /**
   * Takes ownership of `block` (from the same pool, category "write") holding the block at
   * `offset` of `piece`: one whole block at a block boundary (`length` defaults to the block's
   * size, shorter only for the last block of the last piece). Completes once the block is in the
   * store buffer; it reaches storage later, and goes back to the pool then. A failed storage
   * write is recorded: the piece's next `hash` and the torrent's `flush` fail with it. The block
   * is released on every path, also when the write is refused.
   */
  readonly write: (
    torrent: TorrentHandle,
    piece: number,
    offset: number,
    block: BufferPool.Block,
    length?: number
  ) => Effect.Effect<Written, DiskIoError>
  /**
   * Hashes `piece` after every write of it issued before the call has reached storage (SHA-1,
   * plus SHA-256 block hashes with `v2`), reading it in chunks of pool blocks (category "hash")
   * on the hasher's threads. Fails with `WriteFailed` if one of those writes failed.
   */
  readonly hash: (
    torrent: TorrentHandle,
    piece: number,
    options?: HashOptions
  ) => Effect.Effect<Hashed, DiskIoError>
  /**
   * After a failed hash: drops the piece's writes that have not started (they never reach
   * storage), waits for those in flight, and forgets the piece's recorded write error.
   */
  readonly clearPiece: (torrent: TorrentHandle, piece: number) => Effect.Effect<void, DiskIoError>
  /** Waits until every write issued before it is on storage; fails with the first write error. */
  readonly flush: (torrent: TorrentHandle) => Effect.Effect<void, DiskIoError>
  /** `flush`, then the storage's `sync` (forces written data to stable storage). */
  readonly sync: (torrent: TorrentHandle) => Effect.Effect<void, DiskIoError>
  /** libtorrent's `stop_torrent`: `flush`, then `releaseFiles` (also if the flush failed). */
  readonly stopTorrent: (torrent: TorrentHandle) => Effect.Effect<void, DiskIoError>
  /** Closes the torrent's open files; they reopen on demand. */
  readonly releaseFiles: (torrent: TorrentHandle) => Effect.Effect<void, DiskIoError>
  /** Copies the counters into the Effect metrics, and returns them. */
  readonly stats: Effect.Effect<Stats>
  readonly unsafeStats: () => Stats
}

/**
 * @since 0.1.0
 * @category tags
 */
export class DiskIo extends Context.Tag("@ezio/disk-io/DiskIo")<DiskIo, DiskIoService>() {}

/**
 * The engine's metrics, tagged with `engine` (its name) and, per job kind, `kind`. The counters
 * are copied from plain counters once a second and whenever `stats` is read.
 *
 * @since 0.1.0
 * @category metrics
 */
export const metrics = {
  queued: Metric.gauge("ezio_disk_jobs_queued", { description: "Disk jobs waiting, by kind" }),
  running: Metric.gauge("ezio_disk_jobs_running", { description: "Disk jobs in progress, by kind" }),
  completed: Metric.counter("ezio_disk_jobs_completed_total", {
    description: "Disk jobs done, by kind",
    incremental: true
  }),
  failed: Metric.counter("ezio_disk_jobs_failed_total", {
    description: "Disk jobs failed, by kind",
    incremental: true
  }),
  bytesRead: Metric.counter("ezio_disk_read_bytes_total", {
    description: "Bytes returned by reads",
    incremental: true
  }),
  bytesWritten: Metric.counter("ezio_disk_written_bytes_total", {
    description: "Bytes written to storage",
    incremental: true
  }),
  bytesHashed: Metric.counter("ezio_disk_hashed_bytes_total", {
    description: "Bytes hashed",
    incremental: true
  }),
  storeBuffer: Metric.gauge("ezio_disk_store_buffer_blocks", {
    description: "Written blocks not on storage yet"
  }),
  poolInUse: Metric.gauge("ezio_disk_pool_in_use_blocks", {
    description: "Blocks of the shared pool in use (reads, writes and hashes)"
  }),
  writeErrors: Metric.counter("ezio_disk_write_errors_total", {
    description: "Failed storage writes",
    incremental: true
  })
}

const V2_BLOCK = 16 * 1024

const emptyRead: Read = { blocks: [], views: [], length: 0, release: () => {} }
const notExceeded: Written = { exceeded: false }
const exceeded: Written = { exceeded: true }

const makeRead = (
  blocks: ReadonlyArray<BufferPool.Block>,
  views: ReadonlyArray<Uint8Array>,
  length: number
): Read => ({
  blocks,
  views,
  length,
  release: () => {
    for (const block of blocks) if (!block.released) block.release()
  }
})

const releaseAll = (blocks: ReadonlyArray<BufferPool.Block>) => {
  for (const block of blocks) if (!block.released) block.release()
}

/** Waits for a permit of `gate`; interruption leaves the queue or hands the permit back. */
const waitGate = (gate: Gate): Effect.Effect<void> =>
  Effect.async<void>((resume) => {
    const waiter = gate.enqueue()
    waiter.wake = () => resume(Effect.void)
    return Effect.sync(() => gate.cancel(waiter))
  })

const takeGate = (gate: Gate): Effect.Effect<void> =>
  Effect.suspend(() => (gate.tryTake() ? Effect.void : waitGate(gate)))

/**
 * Builds an engine over the `BufferPool` and `Hasher` in context, whose life is the current
 * scope. Closing it waits for pending writes to reach storage, then stops the aio fibers.
 *
 * @since 0.1.0
 * @category constructors
 */
export const make = (
  options: Options = {}
): Effect.Effect<DiskIoService, never, Scope.Scope | BufferPool.BufferPool | Hasher.Hasher> =>
  Effect.gen(function* () {
    const pool = yield* BufferPool.BufferPool
    const hasher = yield* Hasher.Hasher
    const scope = yield* Effect.scope
    const name = options.name ?? "default"
    const bs = pool.blockSize
    const aioThreads = Math.max(1, Math.floor(options.aioThreads ?? 4))
    const hashThreads = Math.max(1, Math.floor(options.hashThreads ?? hasher.threads))
    const unit = Math.max(bs, V2_BLOCK)
    const chunkBytes = Math.ceil((Math.max(1, options.hashChunkBlocks ?? 64) * bs) / unit) * unit
    const chunkBlocks = chunkBytes / bs
    const core = new EngineCore(
      bs,
      Math.max(1, options.maxWriteBlocks ?? 64),
      Math.max(1, Math.floor(options.writeCoalesceBlocks ?? 64)),
      pool.unsafeIsExceeded
    )
    const io = new Gate(aioThreads)
    const hashGate = new Gate(hashThreads)

    // Blocks the engine owns between requests (pending writes, reads on their way out) are held
    // by this scope: closed last, after the drain below, so nothing outlives the engine.
    const holdScope = yield* Scope.fork(scope, ExecutionStrategy.sequential)

    // ---- errors

    const errorOf = (
      t: { readonly id: number; readonly name: string },
      reason: DiskIoError["reason"],
      operation: Operation,
      where: {
        readonly piece?: number
        readonly offset?: number
        readonly length?: number
        readonly cause?: unknown
        readonly detail?: string
      } = {}
    ) => new DiskIoError({ reason, operation, torrent: t.id, name: t.name, ...where })

    const lookup = (handle: TorrentHandle, operation: Operation): TorrentState | DiskIoError => {
      if (!(handle instanceof TorrentState) || handle.core !== core) {
        return errorOf(handle, "UnknownTorrent", operation)
      }
      if (core.closed) return errorOf(handle, "Closed", operation)
      if (handle.removed) return errorOf(handle, "TorrentRemoved", operation)
      return handle
    }

    const badPiece = (t: TorrentState, piece: number) =>
      !Number.isInteger(piece) || piece < 0 || piece >= t.layout.pieceCount

    const writeFailed = (t: TorrentState, operation: Operation, piece: number, error: RecordedError) =>
      errorOf(t, "WriteFailed", operation, {
        piece,
        offset: error.offset,
        length: error.length,
        cause: error.cause
      })

    const poolError = (
      t: TorrentState,
      operation: Operation,
      piece: number,
      cause: BufferPool.PoolClosed | BufferPool.PoolExhausted
    ) => errorOf(t, "Pool", operation, { piece, cause })

    // ---- blocks

    const tryTakeN = (count: number, category: BufferPool.Category): Array<BufferPool.Block> | undefined => {
      const out: Array<BufferPool.Block> = []
      for (let i = 0; i < count; i++) {
        const block = pool.unsafeTryAcquire(category)
        if (block === undefined) {
          releaseAll(out)
          return undefined
        }
        out.push(block)
      }
      return out
    }

    // The slow path, inside an uninterruptible region: waits (interruptibly) in the pool's queue
    // into a scope of its own, so an interruption at any point gives the blocks back.
    const takeBlocksSlow = (
      count: number,
      category: BufferPool.Category,
      restore: <A, E, R>(effect: Effect.Effect<A, E, R>) => Effect.Effect<A, E, R>
    ): Effect.Effect<Array<BufferPool.Block>, BufferPool.PoolClosed | BufferPool.PoolExhausted> =>
      Effect.flatMap(Scope.make(), (waitScope) =>
        restore(pool.acquireMany(count, category)).pipe(
          Effect.tap((acquired) => pool.transfer(acquired.value, holdScope)),
          Effect.provideService(Scope.Scope, waitScope),
          Effect.onExit((exit) => Scope.close(waitScope, exit)),
          Effect.map((acquired) => acquired.value as Array<BufferPool.Block>)
        )
      )

    const viewsOf = (blocks: ReadonlyArray<BufferPool.Block>, length: number): Array<Uint8Array> => {
      const views = new Array<Uint8Array>(Math.ceil(length / bs))
      for (let i = 0; i < views.length; i++) {
        const bytes = blocks[i]!.bytes
        const n = Math.min(bs, length - i * bs)
        views[i] = n === bs ? bytes : bytes.subarray(0, n)
      }
      return views
    }

    // ---- waiting

    const waitWrites = (piece: PieceState, seq: number): Effect.Effect<void> =>
      Effect.suspend(() =>
        piece.lowest() > seq
          ? Effect.void
          : Effect.async<void>((resume) => {
              core.urge(piece)
              const waiter = { seq, wake: () => resume(Effect.void) }
              piece.waiters.push(waiter)
              return Effect.sync(() => {
                const i = piece.waiters.indexOf(waiter)
                if (i >= 0) piece.waiters.splice(i, 1)
                core.forget(piece)
              })
            })
      )

    const drained = (done: () => boolean): Effect.Effect<void> =>
      Effect.suspend(() =>
        done()
          ? Effect.void
          : Effect.async<void>((resume) => {
              core.urgeAll()
              const check = () => {
                if (!done()) return false
                resume(Effect.void)
                return true
              }
              core.drainWaiters.push(check)
              return Effect.sync(() => {
                const i = core.drainWaiters.indexOf(check)
                if (i >= 0) core.drainWaiters.splice(i, 1)
              })
            })
      )

    // ---- the aio fibers: each takes a piece with queued writes and writes a batch of them

    const nextPiece = Effect.async<PieceState>((resume) => {
      const piece = core.takeReady()
      if (piece !== undefined) return resume(Effect.succeed(piece))
      const wake = (p: PieceState) => resume(Effect.succeed(p))
      core.idle.push(wake)
      return Effect.sync(() => {
        const i = core.idle.indexOf(wake)
        if (i >= 0) core.idle.splice(i, 1)
      })
    })

    const bytesOf = (entry: Entry) =>
      entry.length === bs ? entry.block.bytes : entry.block.bytes.subarray(0, entry.length)

    const writeBatch = (piece: PieceState): Effect.Effect<void> =>
      Effect.zipRight(
        takeGate(io),
        Effect.suspend(() => {
          const batch = core.selectBatch(piece)
          if (batch.length === 0) return Effect.void
          const storage = piece.torrent.storage
          return Effect.forEach(
            core.runs(batch),
            (run) =>
              Effect.exit(
                Effect.uninterruptible(storage.write(piece.index, run[0]!.offset, run.map(bytesOf)))
              ).pipe(
                Effect.map((exit) =>
                  core.complete(run, exit._tag === "Success" ? undefined : Cause.squash(exit.cause))
                )
              ),
            { discard: true }
          )
        }).pipe(
          Effect.ensuring(
            Effect.sync(() => {
              io.release()
              core.batchDone(piece)
            })
          )
        )
      )

    const worker = nextPiece.pipe(
      Effect.flatMap((piece) =>
        Effect.catchAllCause(writeBatch(piece), (cause) =>
          Effect.logError("DiskIo: a write batch failed unexpectedly", cause)
        )
      ),
      Effect.forever
    )
    for (let i = 0; i < aioThreads; i++) yield* Effect.forkIn(worker, scope)

    // ---- metrics

    const unsafeStats = (): Stats => {
      const poolStats = pool.unsafeStats()
      const jobs = {} as Record<JobKind, JobCounts>
      for (const kind of jobKinds) jobs[kind] = { ...core.jobs[kind] }
      return {
        name,
        aioThreads,
        hashThreads,
        torrents: core.torrents.size,
        jobs,
        bytesRead: core.bytesRead,
        bytesReadFromStoreBuffer: core.bytesFromStore,
        bytesWritten: core.bytesWritten,
        bytesHashed: core.bytesHashed,
        storeBufferBlocks: core.storeBlocks,
        storeBufferPeak: core.storePeak,
        writeErrors: core.writeErrors,
        writeBatches: core.batches,
        poolInUse: poolStats.inUse,
        poolPeak: poolStats.peak,
        poolHardLimit: poolStats.hardLimitBlocks
      }
    }

    // Held-back writes of pieces nobody waits for (a peer went away mid-piece) still go soon.
    yield* Effect.sleep(options.writeDelay ?? Duration.millis(100)).pipe(
      Effect.zipRight(Effect.sync(() => core.urgeAll())),
      Effect.forever,
      Effect.forkIn(scope)
    )

    const syncMetrics = makeMetricSync(name, unsafeStats)
    yield* syncMetrics.pipe(Effect.repeat(Schedule.spaced("1 second")), Effect.forkIn(scope))

    // Closing: refuse new jobs, let pending writes reach storage, then (finalizers run in reverse)
    // the fibers above stop and `holdScope` gives back whatever is left.
    yield* Effect.addFinalizer(() =>
      Effect.suspend(() => {
        core.closed = true
        return drained(() => core.outstanding === 0)
      }).pipe(Effect.zipRight(syncMetrics))
    )

    // ---- torrents

    const addTorrent = (storage: Storage.StorageService, options: { readonly name?: string } = {}) =>
      Effect.suspend(() => {
        const torrentName = options.name ?? storage.layout.name
        const id = ++core.nextTorrent
        if (core.closed) {
          return Effect.fail(errorOf({ id, name: torrentName }, "Closed", "removeTorrent"))
        }
        const torrent = new TorrentState(core, id, torrentName, storage, storage.layout)
        core.torrents.set(id, torrent)
        return Effect.succeed<TorrentHandle>(torrent)
      })

    const flushTorrent = (t: TorrentState, operation: Operation): Effect.Effect<void, DiskIoError> =>
      Effect.suspend(() => {
        const seq = core.seq
        const pending: Array<PieceState> = []
        for (const piece of t.pieces.values()) if (piece.lowest() <= seq) pending.push(piece)
        return Effect.zipRight(
          Effect.forEach(pending, (piece) => waitWrites(piece, seq), { discard: true }),
          Effect.suspend(() => {
            let first: PieceState | undefined
            for (const piece of t.pieces.values()) {
              if (piece.error !== undefined && (first === undefined || piece.error.seq < first.error!.seq))
                first = piece
            }
            return first === undefined
              ? Effect.void
              : Effect.fail(writeFailed(t, operation, first.index, first.error!))
          })
        )
      })

    const releaseFilesOf = (t: TorrentState, operation: Operation) =>
      Effect.mapError(t.storage.releaseFiles, (cause) => errorOf(t, "Storage", operation, { cause }))

    const removeTorrent = (handle: TorrentHandle) =>
      Effect.suspend(() => {
        const t = lookup(handle, "removeTorrent")
        if (t instanceof DiskIoError) return Effect.fail(t)
        t.removed = true
        return Effect.gen(function* () {
          const flushed = yield* Effect.exit(flushTorrent(t, "removeTorrent"))
          yield* drained(() => t.outstanding === 0)
          const released = yield* Effect.exit(releaseFilesOf(t, "removeTorrent"))
          core.torrents.delete(t.id)
          for (const piece of t.pieces.values()) piece.error = undefined
          for (const piece of [...t.pieces.values()]) core.forget(piece)
          yield* flushed
          yield* released
        })
      })

    const stopTorrent = (handle: TorrentHandle) =>
      Effect.suspend(() => {
        const t = lookup(handle, "stopTorrent")
        if (t instanceof DiskIoError) return Effect.fail(t)
        return Effect.flatMap(Effect.exit(flushTorrent(t, "stopTorrent")), (flushed) =>
          Effect.zipRight(releaseFilesOf(t, "stopTorrent"), flushed)
        )
      })

    const releaseFiles = (handle: TorrentHandle) =>
      Effect.suspend(() => {
        const t = lookup(handle, "releaseFiles")
        return t instanceof DiskIoError ? Effect.fail(t) : releaseFilesOf(t, "releaseFiles")
      })

    const flush = (handle: TorrentHandle) =>
      Effect.suspend(() => {
        const t = lookup(handle, "flush")
        return t instanceof DiskIoError ? Effect.fail(t) : flushTorrent(t, "flush")
      })

    const sync = (handle: TorrentHandle) =>
      Effect.suspend(() => {
        const t = lookup(handle, "sync")
        if (t instanceof DiskIoError) return Effect.fail(t)
        return Effect.zipRight(
          flushTorrent(t, "sync"),
          Effect.mapError(t.storage.sync, (cause) => errorOf(t, "Storage", "sync", { cause }))
        )
      })

    // ---- write

    const write = (
      handle: TorrentHandle,
      piece: number,
      offset: number,
      block: BufferPool.Block,
      length?: number
    ): Effect.Effect<Written, DiskIoError> =>
      Effect.uninterruptible(
        Effect.suspend(() => {
          const t = lookup(handle, "write")
          const refuse = (error: DiskIoError) => {
            if (!block.released) block.release()
            return Effect.fail(error)
          }
          if (t instanceof DiskIoError) return refuse(t)
          if (block.released) {
            return Effect.fail(errorOf(t, "InvalidBlock", "write", { piece, offset }))
          }
          if (badPiece(t, piece)) return refuse(errorOf(t, "OutOfRange", "write", { piece, offset }))
          const size = Layout.pieceSize(t.layout, piece)
          if (!Number.isInteger(offset) || offset < 0 || offset >= size) {
            return refuse(errorOf(t, "OutOfRange", "write", { piece, offset }))
          }
          const expected = Math.min(bs, size - offset)
          if (offset % bs !== 0 || (length !== undefined && length !== expected)) {
            return refuse(
              errorOf(t, "Unaligned", "write", {
                piece,
                offset,
                ...(length === undefined ? {} : { length }),
                detail: `blocks are ${bs} bytes; the block at this offset is ${expected} bytes`
              })
            )
          }
          return Effect.map(pool.transfer([block], holdScope), () => {
            core.insert(core.piece(t, piece), offset, expected, block)
            if (!pool.unsafeIsExceeded()) return notExceeded
            core.urgeAll()
            return exceeded
          })
        })
      )

    // ---- read

    const readMisses = (
      t: TorrentState,
      piece: number,
      offset: number,
      length: number,
      misses: Array<number>,
      views: Array<Uint8Array>
    ): Effect.Effect<void, DiskIoError> => {
      const storage = t.storage
      const one = (from: number, to: number) =>
        storage.read(
          piece,
          from,
          from === offset && to === offset + length
            ? views
            : sliceViews(views, bs, from - offset, to - offset)
        )
      let effect: Effect.Effect<void, StorageError.StorageError>
      if (misses.length === 2) effect = one(misses[0]!, misses[1]!)
      else {
        const pairs: Array<number> = []
        for (let i = 0; i < misses.length; i += 2) pairs.push(i)
        effect = Effect.forEach(pairs, (i) => one(misses[i]!, misses[i + 1]!), { discard: true })
      }
      return Effect.mapError(Effect.uninterruptible(effect), (cause) =>
        errorOf(t, "Storage", "read", { piece, offset, length, cause })
      )
    }

    // Inside the read's uninterruptible region, with its blocks: copy what the store buffer
    // holds, read the rest from storage (holding back later writes of the piece meanwhile).
    const startRead = (
      t: TorrentState,
      piece: number,
      offset: number,
      length: number,
      blocks: ReadonlyArray<BufferPool.Block>,
      target: Scope.Scope,
      restore: <A, E, R>(effect: Effect.Effect<A, E, R>) => Effect.Effect<A, E, R>
    ): Effect.Effect<Read, DiskIoError> => {
      const jobs = core.jobs.read
      const views = viewsOf(blocks, length)
      const existing = t.pieces.get(piece)
      const misses = core.overlay(existing, offset, length, views)
      const read = makeRead(blocks, views, length)
      if (misses.length === 0) {
        jobs.queued--
        jobs.completed++
        core.bytesRead += length
        return Effect.as(pool.transfer(blocks, target), read)
      }
      const state = existing ?? core.piece(t, piece)
      const seq = core.seq
      state.readers.push(seq)
      let permit = io.tryTake()
      // The I/O itself is uninterruptible (the kernel writes into the blocks until it returns);
      // run inside `restore`, an interruption meanwhile is delivered as soon as it returns, and
      // lands in `onFailure` below, which gives the blocks back.
      const storageRead = restore(readMisses(t, piece, offset, length, misses, views))
      let run: Effect.Effect<void, DiskIoError>
      if (permit) {
        jobs.queued--
        jobs.running++
        run = storageRead
      } else {
        run = Effect.zipRight(
          restore(waitGate(io)),
          Effect.suspend(() => {
            permit = true
            jobs.queued--
            jobs.running++
            return storageRead
          })
        )
      }
      const finish = () => {
        if (permit) {
          io.release()
          jobs.running--
        } else jobs.queued--
        core.unregisterReader(state, seq)
      }
      return Effect.matchCauseEffect(run, {
        onFailure: (cause) => {
          finish()
          read.release()
          jobs.failed++
          return Effect.failCause(cause)
        },
        onSuccess: () => {
          finish()
          jobs.completed++
          core.bytesRead += length
          return Effect.as(pool.transfer(blocks, target), read)
        }
      })
    }

    const readInto = (
      handle: TorrentHandle,
      piece: number,
      offset: number,
      length: number,
      target: Scope.Scope
    ): Effect.Effect<Read, DiskIoError> =>
      Effect.uninterruptibleMask((restore) =>
        Effect.suspend(() => {
          const t = lookup(handle, "read")
          if (t instanceof DiskIoError) return Effect.fail(t)
          if (
            badPiece(t, piece) ||
            !Number.isInteger(offset) ||
            !Number.isInteger(length) ||
            offset < 0 ||
            length < 0 ||
            offset + length > Layout.pieceSize(t.layout, piece)
          ) {
            return Effect.fail(errorOf(t, "OutOfRange", "read", { piece, offset, length }))
          }
          if (length === 0) return Effect.succeed(emptyRead)
          const count = Math.ceil(length / bs)
          core.jobs.read.queued++
          const blocks = tryTakeN(count, "read")
          if (blocks !== undefined) return startRead(t, piece, offset, length, blocks, target, restore)
          return Effect.matchCauseEffect(takeBlocksSlow(count, "read", restore), {
            onFailure: (cause) => {
              core.jobs.read.queued--
              core.jobs.read.failed++
              return Effect.failCause(Cause.map(cause, (error) => poolError(t, "read", piece, error)))
            },
            onSuccess: (blocks) => startRead(t, piece, offset, length, blocks, target, restore)
          })
        })
      )

    const readOwned = (handle: TorrentHandle, piece: number, offset: number, length: number) =>
      readInto(handle, piece, offset, length, holdScope)

    const read = (handle: TorrentHandle, piece: number, offset: number, length: number) =>
      Effect.flatMap(Effect.scope, (target) => readInto(handle, piece, offset, length, target))

    // ---- hash

    // The blocks are pinned (they stay out of the pool even once written), so the hash needs no
    // blocks of its own and reads nothing back. It answers once the writes it saw are on storage:
    // a piece reported good is also written, or its write error is reported.
    const hashPinned = (
      t: TorrentState,
      piece: number,
      v2: boolean,
      state: { running: boolean },
      entries: Array<Entry>,
      restore: <A, E, R>(effect: Effect.Effect<A, E, R>) => Effect.Effect<A, E, R>
    ): Effect.Effect<Hashed, DiskIoError> => {
      const written = entries[0]!.piece
      const seq = core.seq
      let pinned = true
      let permit = false
      const cleanup = () => {
        if (pinned) core.unpin(entries)
        if (permit) hashGate.release()
        pinned = false
        permit = false
      }
      const body = Effect.gen(function* () {
        if (!hashGate.tryTake()) yield* restore(waitGate(hashGate))
        permit = true
        core.jobs.hash.queued--
        core.jobs.hash.running++
        state.running = true
        const views = entries.map((e) =>
          e.length === bs ? e.block.bytes : e.block.bytes.subarray(0, e.length)
        )
        const job = hasher.begin({ algorithm: "sha1", blockHashes: v2, blockSize: V2_BLOCK })
        const result = yield* Effect.mapError(job.final(views), (cause) =>
          errorOf(t, "Hash", "hash", { piece, cause })
        )
        core.bytesHashed += Layout.pieceSize(t.layout, piece)
        cleanup()
        yield* restore(waitWrites(written, seq))
        if (written.error !== undefined)
          return yield* Effect.fail(writeFailed(t, "hash", piece, written.error))
        return v2 ? { sha1: result.digest, blockHashes: [...result.blocks] } : { sha1: result.digest }
      })
      return Effect.onExit(body, () => Effect.sync(cleanup))
    }

    const runHash = (
      t: TorrentState,
      piece: number,
      v2: boolean,
      state: { running: boolean }
    ): Effect.Effect<Hashed, DiskIoError> =>
      Effect.uninterruptibleMask((restore) => {
        let permit = false
        let blocks: Array<BufferPool.Block> | undefined
        let reader: PieceState | undefined
        let readerSeq = 0
        const cleanup = () => {
          if (reader !== undefined) core.unregisterReader(reader, readerSeq)
          if (blocks !== undefined) releaseAll(blocks)
          if (permit) hashGate.release()
        }
        const body = Effect.gen(function* () {
          if (!hashGate.tryTake()) yield* restore(waitGate(hashGate))
          permit = true
          const size = Layout.pieceSize(t.layout, piece)
          const count = Math.max(1, Math.min(chunkBlocks, Math.ceil(size / bs)))
          blocks =
            tryTakeN(count, "hash") ??
            (yield* Effect.mapError(takeBlocksSlow(count, "hash", restore), (error) =>
              poolError(t, "hash", piece, error)
            ))
          core.jobs.hash.queued--
          core.jobs.hash.running++
          state.running = true
          // From here on, writes of this piece issued later wait: storage holds exactly what the
          // piece was when the hash got its resources, once the earlier writes are in.
          reader = core.piece(t, piece)
          readerSeq = core.seq
          reader.readers.push(readerSeq)
          yield* restore(waitWrites(reader, readerSeq))
          if (reader.error !== undefined)
            return yield* Effect.fail(writeFailed(t, "hash", piece, reader.error))
          const job = hasher.begin({ algorithm: "sha1", blockHashes: v2, blockSize: V2_BLOCK })
          const leaves: Array<Uint8Array> = []
          let digest: Uint8Array | undefined
          let at = 0
          do {
            const n = Math.min(chunkBytes, size - at)
            const views = viewsOf(blocks, n)
            if (!io.tryTake()) yield* restore(waitGate(io))
            yield* Effect.uninterruptible(t.storage.read(piece, at, views)).pipe(
              Effect.mapError((cause) =>
                errorOf(t, "Storage", "hash", { piece, offset: at, length: n, cause })
              ),
              Effect.ensuring(Effect.sync(() => io.release()))
            )
            at += n
            if (at >= size) {
              const result = yield* Effect.mapError(job.final(views), (cause) =>
                errorOf(t, "Hash", "hash", { piece, cause })
              )
              digest = result.digest
              for (const leaf of result.blocks) leaves.push(leaf)
            } else {
              const partial = yield* Effect.mapError(job.update(views), (cause) =>
                errorOf(t, "Hash", "hash", { piece, cause })
              )
              for (const leaf of partial) leaves.push(leaf)
            }
          } while (at < size)
          core.bytesHashed += size
          return v2 ? { sha1: digest!, blockHashes: leaves } : { sha1: digest! }
        })
        return Effect.onExit(body, () => Effect.sync(cleanup))
      })

    const hashesPending = new Map<string, { count: number; waiters: Array<() => void> }>()

    const hash = (handle: TorrentHandle, piece: number, options: HashOptions = {}) =>
      Effect.suspend(() => {
        const t = lookup(handle, "hash")
        if (t instanceof DiskIoError) return Effect.fail(t)
        if (badPiece(t, piece)) return Effect.fail(errorOf(t, "OutOfRange", "hash", { piece }))
        const jobs = core.jobs.hash
        jobs.queued++
        const state = { running: false }
        // First the piece's earlier writes, holding nothing (no permit, no blocks, no hold on
        // later writes) while they drain.
        const before = t.pieces.get(piece)
        const seq = core.seq
        const earlier = before !== undefined && before.lowest() <= seq ? waitWrites(before, seq) : Effect.void
        // A clearPiece issued after this hash waits for it, so it cannot drop writes the hash
        // was promised to see.
        const key = `${t.id}:${piece}`
        const pending = hashesPending.get(key) ?? { count: 0, waiters: [] }
        pending.count++
        hashesPending.set(key, pending)
        // A piece whose every block is still in the store buffer (just downloaded) is hashed from
        // there, in place; pinned inside the mask so an interruption cannot leave it pinned.
        const job = Effect.uninterruptibleMask((restore) =>
          Effect.suspend(() => {
            const pinned = core.pinWholePiece(t, piece)
            if (pinned !== undefined) return hashPinned(t, piece, options.v2 === true, state, pinned, restore)
            return restore(Effect.zipRight(earlier, runHash(t, piece, options.v2 === true, state)))
          })
        )
        return job.pipe(
          Effect.onExit((exit) =>
            Effect.sync(() => {
              if (--pending.count === 0) {
                hashesPending.delete(key)
                for (const wake of pending.waiters.splice(0)) wake()
              }
              if (state.running) jobs.running--
              else jobs.queued--
              if (exit._tag === "Success") jobs.completed++
              else jobs.failed++
            })
          )
        )
      })

    // ---- clear

    const clearPiece = (handle: TorrentHandle, piece: number): Effect.Effect<void, DiskIoError> =>
      Effect.suspend(() => {
        const t = lookup(handle, "clearPiece")
        if (t instanceof DiskIoError) return Effect.fail(t)
        if (badPiece(t, piece)) return Effect.fail(errorOf(t, "OutOfRange", "clearPiece", { piece }))
        const pending = hashesPending.get(`${t.id}:${piece}`)
        if (pending !== undefined)
          return Effect.zipRight(
            Effect.async<void>((resume) => {
              pending.waiters.push(() => resume(Effect.void))
            }),
            clearPiece(handle, piece)
          )
        const state = t.pieces.get(piece)
        if (state === undefined) return Effect.void
        const seq = core.seq
        core.dropQueued(state)
        return Effect.map(waitWrites(state, seq), () => {
          if (state.error !== undefined && state.error.seq <= seq) state.error = undefined
          core.forget(state)
        })
      })

    return {
      name,
      blockSize: bs,
      addTorrent,
      removeTorrent,
      read,
      readOwned,
      write,
      hash,
      clearPiece,
      flush,
      sync,
      stopTorrent,
      releaseFiles,
      stats: Effect.map(syncMetrics, unsafeStats),
      unsafeStats
    } satisfies DiskIoService
  })

// The hot path only bumps plain counters; this copies them into Effect metrics once a second and
// whenever `stats` is read, so metrics cost nothing per block.
const makeMetricSync = (name: string, unsafeStats: () => Stats): Effect.Effect<void> => {
  const tag = <M extends Metric.Metric<any, any, any>>(metric: M, kind?: JobKind): M => {
    const withEngine = Metric.tagged(metric, "engine", name) as M
    return kind === undefined ? withEngine : (Metric.tagged(withEngine, "kind", kind) as M)
  }
  const byKind = jobKinds.map((kind) => ({
    kind,
    queued: tag(metrics.queued, kind),
    running: tag(metrics.running, kind),
    completed: tag(metrics.completed, kind),
    failed: tag(metrics.failed, kind)
  }))
  const bytesRead = tag(metrics.bytesRead)
  const bytesWritten = tag(metrics.bytesWritten)
  const bytesHashed = tag(metrics.bytesHashed)
  const storeBuffer = tag(metrics.storeBuffer)
  const poolInUse = tag(metrics.poolInUse)
  const writeErrors = tag(metrics.writeErrors)
  const last = {
    completed: [0, 0, 0],
    failed: [0, 0, 0],
    bytesRead: 0,
    bytesWritten: 0,
    bytesHashed: 0,
    writeErrors: 0
  }
  return Effect.suspend(() => {
    const stats = unsafeStats()
    const effects: Array<Effect.Effect<void>> = []
    const delta = (metric: Metric.Metric.Counter<number>, now: number, before: number) => {
      if (now > before) effects.push(Metric.incrementBy(metric, now - before))
    }
    byKind.forEach((m, i) => {
      const counts = stats.jobs[m.kind]
      effects.push(Metric.set(m.queued, counts.queued), Metric.set(m.running, counts.running))
      delta(m.completed, counts.completed, last.completed[i]!)
      delta(m.failed, counts.failed, last.failed[i]!)
      last.completed[i] = counts.completed
      last.failed[i] = counts.failed
    })
    delta(bytesRead, stats.bytesRead, last.bytesRead)
    delta(bytesWritten, stats.bytesWritten, last.bytesWritten)
    delta(bytesHashed, stats.bytesHashed, last.bytesHashed)
    delta(writeErrors, stats.writeErrors, last.writeErrors)
    last.bytesRead = stats.bytesRead
    last.bytesWritten = stats.bytesWritten
    last.bytesHashed = stats.bytesHashed
    last.writeErrors = stats.writeErrors
    effects.push(Metric.set(storeBuffer, stats.storeBufferBlocks), Metric.set(poolInUse, stats.poolInUse))
    return Effect.all(effects, { discard: true })
  })
}

/**
 * The engine over the `BufferPool` and `Hasher` layers given to it.
 *
 * @since 0.1.0
 * @category layers
 */
export const layer = (
  options: Options = {}
): Layer.Layer<DiskIo, never, BufferPool.BufferPool | Hasher.Hasher> => Layer.scoped(DiskIo, make(options))
