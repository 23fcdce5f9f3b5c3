/**
 * The disk job engine (libtorrent's `disk_interface`): reads, writes and hashes of many torrents
 * sharing one `BufferPool`, with a store buffer that makes a written block visible to reads before
 * it reaches storage, per-piece ordering, bounded concurrency, and watermark backpressure.
 *
 * The parts live in `internal/`: the shared engine state (`engine.ts`), reads, writes and hashes
 * (`read.ts`, `write.ts`, `hash.ts`), torrent-wide jobs (`torrents.ts`), the store buffer, the
 * ordering fence and the concurrency gate (`storeBuffer.ts`, `fence.ts`, `gate.ts`).
 *
 * @since 0.1.0
 */
import { BufferPool } from "@ezio/pool"
import { Hasher, type Storage } from "@ezio/storage"
import * as Config from "effect/Config"
import type * as ConfigError from "effect/ConfigError"
import * as Context from "effect/Context"
import * as Effect from "effect/Effect"
import * as ExecutionStrategy from "effect/ExecutionStrategy"
import type * as Exit from "effect/Exit"
import * as Layer from "effect/Layer"
import * as Option from "effect/Option"
import * as Record from "effect/Record"
import * as Schedule from "effect/Schedule"
import * as Scope from "effect/Scope"
import type { DiskIoError } from "./DiskIoError.js"
import { InvalidDiskIoOptions } from "./DiskIoError.js"
import * as DiskIoMetrics from "./DiskIoMetrics.js"
import { Engine } from "./internal/engine.js"
import { makeHashes } from "./internal/hash.js"
import { makeMetricSync } from "./internal/metrics.js"
import type {
  BlockWrite,
  Hashed,
  HashOptions,
  Options,
  Read,
  Stats,
  TorrentHandle,
  Written,
  WrittenMany
} from "./internal/models.js"
import * as internalOptions from "./internal/options.js"
import { makeReads } from "./internal/read.js"
import { makeTorrents } from "./internal/torrents.js"
import { makeWrite, startWriters } from "./internal/write.js"

export { DiskIoError, InvalidDiskIoOptions } from "./DiskIoError.js"

/**
 * The engine's options; every field has a default, and `make` refuses a value out of range with
 * `InvalidDiskIoOptions`.
 *
 * @since 0.1.0
 * @category models
 */
export type { Options } from "./internal/models.js"

/**
 * A torrent added to the engine. Jobs take it as their first argument.
 *
 * @since 0.1.0
 * @category models
 */
export type { TorrentHandle } from "./internal/models.js"

/**
 * A finished read, whose blocks the holder releases.
 *
 * @since 0.1.0
 * @category models
 */
export type { Read } from "./internal/models.js"

/**
 * A write is in the store buffer; `exceeded` asks the sender to pause.
 *
 * @since 0.1.0
 * @category models
 */
export type { Written } from "./internal/models.js"

/**
 * One block of a `writeMany` batch, and the batch's outcome.
 *
 * @since 0.1.0
 * @category models
 */
export type { BlockWrite, WrittenMany } from "./internal/models.js"

/**
 * @since 0.1.0
 * @category models
 */
export type { HashOptions, Hashed } from "./internal/models.js"

/**
 * @since 0.1.0
 * @category models
 */
export type { JobKind, JobCounts, Stats } from "./internal/models.js"

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
   * `readOwned` for plain code on the send path (one read per run of requests): returns true if
   * the read started, and then calls `onExit` once with its outcome, never before returning (it
   * may first queue for an io permit, as `readOwned` would); returns false, having done nothing,
   * when the read would have to wait for pool blocks, `readOwned` would refuse it, or the storage
   * has no callback read (`Storage.Read.unsafe`): the caller uses `readOwned` then. Nothing
   * interrupts it: closing the engine waits for it to answer.
   */
  readonly unsafeReadOwned: (
    torrent: TorrentHandle,
    piece: number,
    offset: number,
    length: number,
    onExit: (exit: Exit.Exit<Read, DiskIoError>) => void
  ) => boolean
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
   * The hot-path write: `write` of each block in order, as one Effect for the batch (a peer's
   * blocks from one socket read). It does not fail: each refused write (and why) is in
   * `failures`, its block released as `write` would; the rest are in the store buffer.
   */
  readonly writeMany: (
    torrent: TorrentHandle,
    writes: ReadonlyArray<BlockWrite>
  ) => Effect.Effect<WrittenMany>
  /**
   * `writeMany` run to its end on the caller's stack, for plain code on the receive path (one
   * call per batch of a socket's blocks): the same checks, inserts and outcome, no fiber.
   */
  readonly unsafeWriteMany: (torrent: TorrentHandle, writes: ReadonlyArray<BlockWrite>) => WrittenMany
  /**
   * After a write reported `exceeded`: waits until the pool is back below its low watermark and
   * the engine holds at most half of `maxQueuedBytes` of written blocks, so the peer may read its
   * socket again.
   */
  readonly awaitWritable: Effect.Effect<void>
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
   * `hash` for plain code on the download path: `onExit` is called once with its outcome, maybe
   * before this returns. A piece whose every block is still in the store buffer (just
   * downloaded) is hashed without starting a fiber; any other goes through `hash`. Nothing
   * interrupts it: closing the engine waits for it to answer.
   */
  readonly unsafeHash: (
    torrent: TorrentHandle,
    piece: number,
    options: HashOptions,
    onExit: (exit: Exit.Exit<Hashed, DiskIoError>) => void
  ) => void
  /**
   * After a failed hash: drops the piece's writes that have not started (they never reach
   * storage), waits for those in flight, and forgets the piece's recorded write error.
   */
  readonly clearPiece: (torrent: TorrentHandle, piece: number) => Effect.Effect<void, DiskIoError>
  /** Waits until every write issued before it is on storage; fails with the first write error. */
  readonly flush: (torrent: TorrentHandle) => Effect.Effect<void, DiskIoError>
  /** `flush`, then the storage's `sync` (forces written data to stable storage). */
  readonly sync: (torrent: TorrentHandle) => Effect.Effect<void, DiskIoError>
  /**
   * The storage's `sync` alone: what already reached storage becomes durable; writes still in
   * the store buffer stay there, unforced. For data known to be on storage, such as pieces that
   * passed their hash (a hash answers once its piece's writes are on storage).
   */
  readonly syncStored: (torrent: TorrentHandle) => Effect.Effect<void, DiskIoError>
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
 * The engine's metrics (the same objects as the `DiskIoMetrics` module), tagged with `engine`
 * (its name) and, per job kind, `kind`. The counters are copied from plain counters once a second
 * and whenever `stats` is read.
 *
 * @since 0.1.0
 * @category metrics
 */
export const metrics = {
  queued: DiskIoMetrics.queued,
  running: DiskIoMetrics.running,
  completed: DiskIoMetrics.completed,
  failed: DiskIoMetrics.failed,
  bytesRead: DiskIoMetrics.bytesRead,
  bytesWritten: DiskIoMetrics.bytesWritten,
  bytesHashed: DiskIoMetrics.bytesHashed,
  storeBuffer: DiskIoMetrics.storeBuffer,
  poolInUse: DiskIoMetrics.poolInUse,
  writeErrors: DiskIoMetrics.writeErrors
}

/**
 * Builds an engine over the `BufferPool` and `Hasher` in context, whose life is the current
 * scope. Closing it waits for pending writes to reach storage, then stops the aio fibers. Fails
 * with `InvalidDiskIoOptions` naming the first option out of range.
 *
 * @since 0.1.0
 * @category constructors
 */
export const make = (
  options: Options = {}
): Effect.Effect<DiskIoService, InvalidDiskIoOptions, Scope.Scope | BufferPool.BufferPool | Hasher.Hasher> =>
  Effect.gen(function* () {
    const pool = yield* BufferPool.BufferPool
    const hasher = yield* Hasher.Hasher
    const config = internalOptions.resolve(options, pool.blockSize, hasher.threads)
    if (config instanceof InvalidDiskIoOptions) return yield* config
    const scope = yield* Effect.scope
    // Blocks the engine owns between requests are held by this scope: closed last, after the
    // drain below, so nothing outlives the engine.
    const holdScope = yield* Scope.fork(scope, ExecutionStrategy.sequential)
    const engine = new Engine(pool, hasher, config, holdScope)

    yield* startWriters(engine, scope)
    const unsafeStats = () => engine.unsafeStats()
    const syncMetrics = makeMetricSync(config.name, unsafeStats)
    yield* syncMetrics.pipe(Effect.repeat(Schedule.spaced("1 second")), Effect.forkIn(scope))

    // Closing: refuse new jobs, let pending writes reach storage, then (finalizers run in reverse)
    // the fibers above stop and `holdScope` gives back whatever is left.
    yield* Effect.addFinalizer(() =>
      Effect.suspend(() => {
        engine.closed = true
        return engine.drained(() => engine.store.outstanding === 0 && engine.callbackJobs === 0)
      }).pipe(Effect.zipRight(syncMetrics))
    )

    const { read, readOwned, unsafeReadOwned } = makeReads(engine)
    const { clearPiece, hash, unsafeHash } = makeHashes(engine, yield* Effect.runtime<never>())
    const { awaitWritable, write, writeMany, unsafeWriteMany } = makeWrite(engine)
    return {
      name: config.name,
      blockSize: config.blockSize,
      ...makeTorrents(engine),
      read,
      readOwned,
      unsafeReadOwned,
      write,
      writeMany,
      unsafeWriteMany,
      awaitWritable,
      hash,
      unsafeHash,
      clearPiece,
      stats: Effect.map(syncMetrics, unsafeStats),
      unsafeStats
    } satisfies DiskIoService
  })

/**
 * The engine over the `BufferPool` and `Hasher` layers given to it.
 *
 * @since 0.1.0
 * @category layers
 */
export const layer = (
  options: Options = {}
): Layer.Layer<DiskIo, InvalidDiskIoOptions, BufferPool.BufferPool | Hasher.Hasher> =>
  Layer.scoped(DiskIo, make(options))

const count = (key: string) => Config.option(Config.integer(key))

/**
 * Reads `Options` from Effect `Config` under the keys `aioThreads`, `hashThreads`,
 * `hashChunkBlocks`, `maxWriteBlocks`, `writeCoalesceBlocks`, `writeDelay` (a duration such as
 * `100 millis`), `maxQueuedBytes` and `name`; absent keys take the defaults.
 *
 * @since 0.1.0
 * @category config
 */
export const config: Config.Config<Options> = Config.all({
  aioThreads: count("aioThreads"),
  hashThreads: count("hashThreads"),
  hashChunkBlocks: count("hashChunkBlocks"),
  maxWriteBlocks: count("maxWriteBlocks"),
  writeCoalesceBlocks: count("writeCoalesceBlocks"),
  writeDelay: Config.option(Config.duration("writeDelay")),
  maxQueuedBytes: count("maxQueuedBytes"),
  name: Config.option(Config.string("name"))
}).pipe(
  // Only the keys that are set: an unset one keeps its default.
  Config.map(
    (values) => Record.getSomes(values as Record.ReadonlyRecord<string, Option.Option<unknown>>) as Options
  )
)

/**
 * The engine from `Config` (see `config`); by default the keys are nested under `diskIo`, so
 * `ConfigProvider.fromEnv().pipe(ConfigProvider.constantCase)` reads `DISK_IO_AIO_THREADS`.
 *
 * @since 0.1.0
 * @category layers
 */
export const layerConfig = (
  options: Config.Config<Options> = Config.nested(config, "diskIo")
): Layer.Layer<
  DiskIo,
  InvalidDiskIoOptions | ConfigError.ConfigError,
  BufferPool.BufferPool | Hasher.Hasher
> => Layer.scoped(DiskIo, Effect.flatMap(options, make))
