/**
 * One pool of fixed-size blocks shared by disk reads, disk writes and hashing, with watermark
 * backpressure: the design libtorrent 2.x uses and EZIO's split read/write pools gave up.
 *
 * @since 0.1.0
 */
import * as Config from "effect/Config"
import * as ConfigError from "effect/ConfigError"
import * as Either from "effect/Either"
import * as Context from "effect/Context"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as Option from "effect/Option"
import * as Record from "effect/Record"
import * as Queue from "effect/Queue"
import * as Schedule from "effect/Schedule"
import * as Scope from "effect/Scope"
import * as Stream from "effect/Stream"
import * as SubscriptionRef from "effect/SubscriptionRef"
import {
  type BlockHandle,
  categories,
  Holder,
  PoolCore,
  type Waiter,
  type WatermarkTransition
} from "./internal/core.js"
import type { Block, Category, Options } from "./internal/models.js"
import * as internalOptions from "./internal/options.js"
import * as MetricSync from "./MetricSync.js"
import * as PoolMetrics from "./PoolMetrics.js"
import { BlockOwnershipError, InvalidPoolOptions, PoolClosed, PoolExhausted } from "./PoolError.js"

export { BlockOwnershipError, InvalidPoolOptions, PoolClosed, PoolExhausted } from "./PoolError.js"
export type { Block, Category, Options } from "./internal/models.js"

/**
 * A successful acquisition, and whether the pool is past its high watermark after it: a producer
 * (a peer sending us data) should pause and `awaitNormal` when `exceeded` is true.
 *
 * @since 0.1.0
 * @category models
 */
export interface Acquired<A> {
  readonly value: A
  readonly exceeded: boolean
}

/**
 * The watermark state the pool publishes. `exceeded` turns true when in use reaches the high
 * watermark and false again only once it falls to the low watermark (hysteresis). `transitions`
 * counts the changes so far, so a waiter can tell a new `Normal` from the one it already saw.
 *
 * @since 0.1.0
 * @category models
 */
export interface Watermark {
  readonly exceeded: boolean
  readonly transitions: number
  /** Blocks in use when this state was entered. */
  readonly inUse: number
}

/**
 * A snapshot of the pool's counters, for observability only.
 *
 * @since 0.1.0
 * @category models
 */
export interface Stats {
  readonly name: string
  readonly blockSize: number
  readonly capacityBlocks: number
  readonly lowWatermarkBlocks: number
  readonly highWatermarkBlocks: number
  readonly hardLimitBlocks: number
  readonly inUse: number
  readonly inUseBy: Readonly<Record<Category, number>>
  readonly acquiredBy: Readonly<Record<Category, number>>
  readonly released: number
  readonly peak: number
  /** Acquisitions that had to queue at the hard limit. */
  readonly waits: number
  /** Non-waiting acquisitions refused at the hard limit. */
  readonly exhausted: number
  readonly waiting: number
  readonly exceeded: boolean
  /** Normal → exceeded transitions. */
  readonly exceededTransitions: number
  /** Blocks whose memory the pool has committed (slabs are made on first need). */
  readonly allocatedBlocks: number
  readonly closed: boolean
}

/**
 * The pool service.
 *
 * Three tiers, by cost per call (measured in `bench/acquire.ts`):
 * - scoped (`acquire`, `acquireMany`, `tryAcquire…`): blocks go back when the caller's `Scope`
 *   closes, whatever the exit. About one `Scope.addFinalizer` per call, so batch with `acquireMany`.
 * - bracketed (`withBlocks`): acquire, use, release in one `acquireUseRelease`.
 * - unsafe (`unsafeTryAcquire` + `Block.release`): plain calls for socket and fs callbacks that
 *   never enter a fiber; the caller must release.
 *
 * @since 0.1.0
 * @category models
 */
export interface BufferPoolService {
  readonly name: string
  readonly blockSize: number
  /** One block, released when the current scope closes; waits its turn at the hard limit. */
  readonly acquire: (category: Category) => Effect.Effect<Acquired<Block>, PoolClosed, Scope.Scope>
  /**
   * `count` blocks at once, released together when the current scope closes; waits until all
   * of them fit. Fails with `PoolExhausted` only if `count` exceeds the hard limit itself.
   */
  readonly acquireMany: (
    count: number,
    category: Category
  ) => Effect.Effect<Acquired<ReadonlyArray<Block>>, PoolClosed | PoolExhausted, Scope.Scope>
  /** Like `acquire`, but fails with `PoolExhausted` instead of waiting. */
  readonly tryAcquire: (
    category: Category
  ) => Effect.Effect<Acquired<Block>, PoolClosed | PoolExhausted, Scope.Scope>
  /** Like `acquireMany`, but fails with `PoolExhausted` instead of waiting. */
  readonly tryAcquireMany: (
    count: number,
    category: Category
  ) => Effect.Effect<Acquired<ReadonlyArray<Block>>, PoolClosed | PoolExhausted, Scope.Scope>
  /** Acquires `count` blocks (waiting), runs `use`, releases whatever `use` did not hand off. */
  readonly withBlocks: <A, E, R>(
    count: number,
    category: Category,
    use: (blocks: ReadonlyArray<Block>, exceeded: boolean) => Effect.Effect<A, E, R>
  ) => Effect.Effect<A, E | PoolClosed | PoolExhausted, R>
  /**
   * Hands blocks to another scope (the socket fiber's, say) without copying: from now on `to`
   * releases them and the scope that acquired them skips them. Blocks already released are a
   * defect (`BlockOwnershipError`).
   */
  readonly transfer: (blocks: ReadonlyArray<Block>, to: Scope.Scope) => Effect.Effect<void>
  /**
   * `transfer` as a plain call, for a hot path that never enters a fiber (a batch of blocks off
   * a socket): throws the `BlockOwnershipError` that `transfer` dies with.
   */
  readonly unsafeTransfer: (blocks: ReadonlyArray<Block>, to: Scope.Scope) => void
  /** Hot path: a block or `undefined` (hard limit, closed, or others waiting). Caller releases. */
  readonly unsafeTryAcquire: (category: Category) => Block | undefined
  /** Whether the pool is past its high watermark right now (the hysteresis state). */
  readonly unsafeIsExceeded: () => boolean
  /** The watermark state, published on every transition, in order. */
  readonly watermark: SubscriptionRef.SubscriptionRef<Watermark>
  /**
   * Returns at once if the pool is normal; otherwise waits, through `watermark.changes`, for the
   * next transition back to normal. Every waiter wakes once on that transition.
   */
  readonly awaitNormal: Effect.Effect<void>
  /**
   * Applies a new capacity (and optionally hard limit, default: the capacity) at once: watermarks
   * are recomputed from the same fractions; blocks already out stay valid.
   */
  readonly resize: (capacity: number, hardLimit?: number) => Effect.Effect<void, InvalidPoolOptions>
  readonly stats: Effect.Effect<Stats>
  readonly unsafeStats: () => Stats
}

/**
 * @since 0.1.0
 * @category tags
 */
export class BufferPool extends Context.Tag("@ezio/pool/BufferPool")<BufferPool, BufferPoolService>() {}

/**
 * Builds a pool whose life is the current scope: when it closes, waiters fail with `PoolClosed`,
 * later acquisitions too, and blocks still out are reported in a warning.
 *
 * @since 0.1.0
 * @category constructors
 */
export const make = (
  options: Options = {}
): Effect.Effect<BufferPoolService, InvalidPoolOptions, Scope.Scope> =>
  Effect.gen(function* () {
    const resolved = internalOptions.resolve(options)
    if (resolved instanceof InvalidPoolOptions) return yield* resolved
    const name = resolved.name

    const initial: Watermark = { exceeded: false, transitions: 0, inUse: 0 }
    const watermark = yield* SubscriptionRef.make(initial)
    // Transitions happen inside plain calls (a socket callback releasing a block); they queue
    // here and one fiber publishes them, in order, none skipped.
    const pending = yield* Queue.unbounded<WatermarkTransition>()
    const core = new PoolCore(resolved, (transition) => Queue.unsafeOffer(pending, transition))

    const syncMetrics = makeMetricSync(core)
    yield* Queue.take(pending).pipe(
      Effect.flatMap((transition) => SubscriptionRef.set(watermark, transition)),
      Effect.zipRight(syncMetrics),
      Effect.forever,
      Effect.forkScoped
    )
    yield* syncMetrics.pipe(Effect.repeat(Schedule.spaced("1 second")), Effect.forkScoped)

    yield* Effect.addFinalizer(() =>
      Effect.suspend(() => {
        core.close()
        const outstanding = core.inUse
        return Effect.zipRight(
          syncMetrics,
          outstanding === 0
            ? Effect.void
            : Effect.logWarning(
                `BufferPool "${name}" closed with ${outstanding} block(s) still in use; they were not released by their owners`
              ).pipe(
                Effect.annotateLogs({
                  pool: name,
                  inUse: outstanding,
                  read: core.inUseBy[0],
                  write: core.inUseBy[1],
                  hash: core.inUseBy[2]
                })
              )
        )
      })
    )

    const closedError = (method: string) => new PoolClosed({ pool: name, method })
    const exhaustedError = (requested: number) =>
      new PoolExhausted({ pool: name, requested, inUse: core.inUse, hardLimit: core.config.hardLimitBlocks })

    const checkCount = (count: number): PoolExhausted | undefined =>
      count > core.config.hardLimitBlocks ? exhaustedError(count) : undefined

    // One holder and one finalizer per scope, however many blocks it acquires or receives: after
    // the first acquisition into a scope, the next ones cost a WeakMap lookup, not a finalizer.
    const holders = new WeakMap<Scope.Scope, Holder>()
    const own = (scope: Scope.Scope, blocks: ReadonlyArray<BlockHandle>): Effect.Effect<void> => {
      const holder = holders.get(scope)
      if (holder !== undefined && !holder.closed) {
        core.hold(holder, blocks)
        return Effect.void
      }
      const fresh = new Holder()
      holders.set(scope, fresh)
      core.hold(fresh, blocks)
      return Scope.addFinalizer(
        scope,
        Effect.sync(() => core.releaseHeld(fresh))
      )
    }

    const waitFor = (waiter: Waiter, method: string) =>
      Effect.async<Array<BlockHandle>, PoolClosed>((resume) => {
        const settle = () => {
          if (waiter.closed) resume(Effect.fail(closedError(method)))
          else resume(Effect.succeed(waiter.blocks!))
        }
        if (waiter.blocks !== undefined || waiter.closed) return settle()
        waiter.wake = settle
      })

    // Takes `count` blocks, queueing at the hard limit, and hands them to `scope` atomically:
    // interruption while queued (or just after being served) gives everything back.
    const acquireInto = (
      method: string,
      count: number,
      category: Category,
      wait: boolean,
      register: (blocks: Array<BlockHandle>) => Effect.Effect<void>
    ): Effect.Effect<Array<BlockHandle>, PoolClosed | PoolExhausted> =>
      Effect.uninterruptibleMask((restore): Effect.Effect<Array<BlockHandle>, PoolClosed | PoolExhausted> => {
        if (core.closed) return Effect.fail(closedError(method))
        const tooMany = checkCount(count)
        if (tooMany !== undefined) return Effect.fail(tooMany)
        if (core.canTake(count)) {
          const blocks = core.takeMany(count, category)
          return Effect.as(register(blocks), blocks)
        }
        if (!wait) {
          core.exhausted++
          return Effect.fail(exhaustedError(count))
        }
        const waiter = core.enqueue(count, category)
        return restore(waitFor(waiter, method)).pipe(
          Effect.onInterrupt(() => Effect.sync(() => core.cancel(waiter))),
          Effect.tap(register)
        )
      })

    const acquired = <A>(value: A): Acquired<A> => ({ value, exceeded: core.exceeded })

    // Fast path, all in one synchronous callback (so nothing can interrupt between taking the
    // blocks and putting them in the scope's holder): the scope already has a holder and the
    // blocks fit. Otherwise the uninterruptible slow path registers the holder or waits.
    const scoped = <A>(
      method: string,
      count: number,
      category: Category,
      wait: boolean,
      wrap: (blocks: Array<BlockHandle>) => A
    ): Effect.Effect<Acquired<A>, PoolClosed | PoolExhausted, Scope.Scope> =>
      Effect.flatMap(Effect.scope, (scope) => {
        const holder = holders.get(scope)
        if (holder !== undefined && !holder.closed && core.canTake(count)) {
          const blocks = core.takeMany(count, category)
          core.hold(holder, blocks)
          return Effect.succeed(acquired(wrap(blocks)))
        }
        return Effect.map(
          acquireInto(method, count, category, wait, (blocks) => own(scope, blocks)),
          (blocks) => acquired(wrap(blocks))
        )
      })

    const first = (blocks: Array<BlockHandle>): Block => blocks[0]!
    const all = (blocks: Array<BlockHandle>): ReadonlyArray<Block> => blocks

    // One block always fits under a hard limit of at least one block: no PoolExhausted here.
    const acquire = (category: Category) =>
      scoped("acquire", 1, category, true, first) as Effect.Effect<Acquired<Block>, PoolClosed, Scope.Scope>
    const acquireMany = (count: number, category: Category) =>
      scoped("acquireMany", count, category, true, all)
    const tryAcquire = (category: Category) => scoped("tryAcquire", 1, category, false, first)
    const tryAcquireMany = (count: number, category: Category) =>
      scoped("tryAcquireMany", count, category, false, all)

    const withBlocks = <A, E, R>(
      count: number,
      category: Category,
      use: (blocks: ReadonlyArray<Block>, exceeded: boolean) => Effect.Effect<A, E, R>
    ): Effect.Effect<A, E | PoolClosed | PoolExhausted, R> =>
      Effect.suspend(() => {
        // Not acquireUseRelease: its acquire is uninterruptible, so a wait at the hard limit could
        // not be interrupted. Taking the blocks and holding them is atomic inside acquireInto, and
        // the holder releases whatever it holds on every exit, so the wait can stay interruptible.
        const holder = new Holder()
        return acquireInto("withBlocks", count, category, true, (blocks) =>
          Effect.sync(() => core.hold(holder, blocks))
        ).pipe(
          Effect.flatMap((blocks) => use(blocks, core.exceeded)),
          Effect.ensuring(Effect.sync(() => core.releaseHeld(holder)))
        )
      })

    const notOwnable = (blocks: ReadonlyArray<BlockHandle>): BlockOwnershipError | undefined => {
      for (const block of blocks) {
        if (block.core !== core)
          return new BlockOwnershipError({ pool: name, slot: block.slot, reason: "ForeignBlock" })
        if (block.released) {
          return new BlockOwnershipError({ pool: name, slot: block.slot, reason: "UsedAfterRelease" })
        }
      }
      return undefined
    }

    const transfer = (blocks: ReadonlyArray<Block>, to: Scope.Scope): Effect.Effect<void> =>
      Effect.suspend(() => {
        const handles = blocks as ReadonlyArray<BlockHandle>
        const error = notOwnable(handles)
        return error === undefined ? own(to, handles) : Effect.die(error)
      }).pipe(Effect.uninterruptible)

    const unsafeTransfer = (blocks: ReadonlyArray<Block>, to: Scope.Scope): void => {
      const handles = blocks as ReadonlyArray<BlockHandle>
      const error = notOwnable(handles)
      if (error !== undefined) throw error
      // A scope that holds blocks already takes more without an Effect; the first needs its finalizer.
      const holder = holders.get(to)
      if (holder !== undefined && !holder.closed) core.hold(holder, handles)
      else Effect.runSync(own(to, handles))
    }

    const unsafeTryAcquire = (category: Category): Block | undefined => core.tryTake(category)

    const awaitNormal: Effect.Effect<void> = Effect.suspend(() => {
      if (!core.exceeded) return Effect.void
      const seen = core.transitions
      return watermark.changes.pipe(
        Stream.filter((state) => state.transitions > seen && !state.exceeded),
        Stream.take(1),
        Stream.runDrain
      )
    })

    const resize = (capacity: number, hardLimit?: number) =>
      Effect.suspend(() => {
        const next = internalOptions.resolve({
          blockSize: resolved.blockSize,
          capacity,
          lowWatermark: resolved.lowFraction,
          highWatermark: resolved.highFraction,
          name,
          ...(hardLimit === undefined ? {} : { hardLimit })
        })
        if (next instanceof InvalidPoolOptions) return Effect.fail(next)
        core.reconfigure(next)
        return Effect.void
      })

    const unsafeStats = (): Stats => snapshot(core)

    return {
      name,
      blockSize: resolved.blockSize,
      acquire,
      acquireMany,
      tryAcquire,
      tryAcquireMany,
      withBlocks,
      transfer,
      unsafeTransfer,
      unsafeTryAcquire,
      unsafeIsExceeded: () => core.exceeded,
      watermark,
      awaitNormal,
      resize,
      stats: Effect.sync(unsafeStats),
      unsafeStats
    } satisfies BufferPoolService
  })

const byCategory = (counts: ReadonlyArray<number>): Record<Category, number> => ({
  read: counts[0]!,
  write: counts[1]!,
  hash: counts[2]!
})

const snapshot = (core: PoolCore): Stats => ({
  name: core.config.name,
  blockSize: core.config.blockSize,
  capacityBlocks: core.config.capacityBlocks,
  lowWatermarkBlocks: core.config.lowBlocks,
  highWatermarkBlocks: core.config.highBlocks,
  hardLimitBlocks: core.config.hardLimitBlocks,
  inUse: core.inUse,
  inUseBy: byCategory(core.inUseBy),
  acquiredBy: byCategory(core.acquiredBy),
  released: core.released,
  peak: core.peak,
  waits: core.waits,
  exhausted: core.exhausted,
  waiting: core.waiting,
  exceeded: core.exceeded,
  exceededTransitions: Math.ceil(core.transitions / 2),
  allocatedBlocks: core.allocatedBlocks,
  closed: core.closed
})

// The hot path only bumps plain counters; this copies them into Effect metrics once a second and
// on each watermark transition, so metrics cost nothing per block.
const makeMetricSync = (core: PoolCore): Effect.Effect<void> => {
  const pool = { pool: core.config.name }
  return MetricSync.make(
    () => core,
    [
      ...categories.flatMap((category, i) => [
        MetricSync.gauge(
          MetricSync.tagged(PoolMetrics.inUse, { ...pool, category }),
          (c: PoolCore) => c.inUseBy[i]!
        ),
        MetricSync.counter(
          MetricSync.tagged(PoolMetrics.acquired, { ...pool, category }),
          (c: PoolCore) => c.acquiredBy[i]!
        )
      ]),
      MetricSync.gauge(MetricSync.tagged(PoolMetrics.peak, pool), (c) => c.peak),
      MetricSync.counter(MetricSync.tagged(PoolMetrics.waits, pool), (c) => c.waits),
      MetricSync.counter(MetricSync.tagged(PoolMetrics.exceeded, pool), (c) => Math.ceil(c.transitions / 2))
    ]
  )
}

/**
 * @since 0.1.0
 * @category layers
 */
export const layer = (options: Options = {}): Layer.Layer<BufferPool, InvalidPoolOptions> =>
  Layer.scoped(BufferPool, make(options))

const size = (key: string) =>
  Config.string(key).pipe(
    Config.mapOrFail((text) => {
      const bytes = internalOptions.parseSize(text)
      return bytes === undefined
        ? Either.left(
            ConfigError.InvalidData([key], `expected a size such as 268435456, 256MiB or 1GiB, got "${text}"`)
          )
        : Either.right(bytes)
    }),
    Config.option
  )

const fraction = (key: string) => Config.option(Config.number(key))

/**
 * Reads `Options` from Effect `Config` under the keys `blockSize`, `capacity`, `lowWatermark`,
 * `highWatermark`, `hardLimit` and `name` (sizes accept `256MiB`, `1GiB` or plain bytes); absent
 * keys take the defaults. Nest it as the app likes: `Config.nested(config, "pool")` reads
 * `POOL_CAPACITY` through `ConfigProvider.fromEnv().pipe(ConfigProvider.constantCase)`.
 *
 * @since 0.1.0
 * @category config
 */
export const config: Config.Config<Options> = Config.all({
  blockSize: size("blockSize"),
  capacity: size("capacity"),
  lowWatermark: fraction("lowWatermark"),
  highWatermark: fraction("highWatermark"),
  hardLimit: size("hardLimit"),
  name: Config.option(Config.string("name"))
}).pipe(
  // Only the keys that are set: an unset one keeps its default.
  Config.map(
    (values) => Record.getSomes(values as Record.ReadonlyRecord<string, Option.Option<unknown>>) as Options
  )
)

/**
 * The pool from `Config` (see `config`); by default the keys are nested under `pool`.
 *
 * @since 0.1.0
 * @category layers
 */
export const layerConfig = (
  options: Config.Config<Options> = Config.nested(config, "pool")
): Layer.Layer<BufferPool, InvalidPoolOptions | ConfigError.ConfigError> =>
  Layer.scoped(BufferPool, Effect.flatMap(options, make))
