/**
 * Model-based properties: random sequences of acquire, acquire-many, try-acquire, release, scope
 * close, hand-off, resize, failure and interruption, run against the real pool and checked after
 * every step against a reference model that is written out plainly below.
 */
import { assert, describe, it } from "@effect/vitest"
import { Effect, Exit, Fiber, FastCheck as fc, Scope, Stream } from "effect"
import { BufferPool } from "../src/index.js"

const BLOCK = 512
const RUNS = Number(process.env.EZIO_POOL_PROPERTY_RUNS ?? 10_000)

// ---------------------------------------------------------------------------------------------
// The reference model: counts only. A release that brings in-use to the low watermark turns the
// state normal, then the queue head is served if it fits (first come, first served), exactly as
// libtorrent's pool frees, checks its level, and only then lets anyone allocate again.

interface ModelConfig {
  readonly low: number
  readonly high: number
  readonly hard: number
}

const configFor = (
  capacityBlocks: number,
  lowF: number,
  highF: number,
  hardBlocks: number
): ModelConfig | undefined => {
  const low = Math.floor(capacityBlocks * lowF)
  const high = Math.max(1, Math.ceil(capacityBlocks * highF))
  return low < high ? { low, high, hard: hardBlocks } : undefined
}

class Model {
  inUse = 0
  exceeded = false
  transitions = 0
  readonly queue: Array<{ readonly id: number; readonly count: number }> = []
  readonly served: Array<number> = []
  readonly normalWaiters: Array<{ readonly id: number; readonly after: number }> = []
  readonly woken: Array<number> = []
  constructor(public config: ModelConfig) {}

  private flip(exceeded: boolean) {
    this.exceeded = exceeded
    this.transitions++
    if (!exceeded) {
      for (const w of this.normalWaiters.splice(0)) this.woken.push(w.id)
    }
  }
  fits(count: number) {
    return this.queue.length === 0 && this.inUse + count <= this.config.hard
  }
  take(count: number) {
    for (let i = 0; i < count; i++) {
      this.inUse++
      if (!this.exceeded && this.inUse >= this.config.high) this.flip(true)
    }
  }
  release(count: number) {
    for (let i = 0; i < count; i++) {
      this.inUse--
      if (this.exceeded && this.inUse <= this.config.low) this.flip(false)
      this.serve()
    }
  }
  serve() {
    while (this.queue.length > 0 && this.inUse + this.queue[0]!.count <= this.config.hard) {
      const head = this.queue.shift()!
      this.take(head.count)
      this.served.push(head.id)
    }
  }
  cancel(id: number) {
    const i = this.queue.findIndex((w) => w.id === id)
    if (i >= 0) {
      this.queue.splice(i, 1)
      this.serve()
    }
  }
  resize(config: ModelConfig) {
    this.config = config
    if (!this.exceeded && this.inUse >= config.high) this.flip(true)
    else if (this.exceeded && this.inUse <= config.low) this.flip(false)
    this.serve()
  }
  awaitNormal(id: number) {
    if (!this.exceeded) this.woken.push(id)
    else this.normalWaiters.push({ id, after: this.transitions })
  }
}

// ---------------------------------------------------------------------------------------------
// Commands. Indices are taken modulo whatever exists when the command runs.

type Command =
  | { readonly _tag: "Acquire"; readonly scope: number; readonly count: number; readonly wait: boolean }
  | { readonly _tag: "Release"; readonly pick: number }
  | { readonly _tag: "CloseScope"; readonly scope: number }
  | { readonly _tag: "OpenScope" }
  | { readonly _tag: "Transfer"; readonly pick: number; readonly scope: number }
  | { readonly _tag: "Resize"; readonly capacity: number; readonly extra: number }
  | { readonly _tag: "FailInUse"; readonly count: number }
  | { readonly _tag: "InterruptInUse"; readonly count: number }
  | { readonly _tag: "InterruptWaiter"; readonly pick: number }
  | { readonly _tag: "AwaitNormal" }

const command: fc.Arbitrary<Command> = fc.oneof(
  {
    weight: 6,
    arbitrary: fc.record({
      _tag: fc.constant("Acquire" as const),
      scope: fc.nat(7),
      count: fc.integer({ min: 1, max: 6 }),
      wait: fc.boolean()
    })
  },
  { weight: 4, arbitrary: fc.record({ _tag: fc.constant("Release" as const), pick: fc.nat(63) }) },
  { weight: 2, arbitrary: fc.record({ _tag: fc.constant("CloseScope" as const), scope: fc.nat(7) }) },
  { weight: 1, arbitrary: fc.record({ _tag: fc.constant("OpenScope" as const) }) },
  {
    weight: 2,
    arbitrary: fc.record({ _tag: fc.constant("Transfer" as const), pick: fc.nat(63), scope: fc.nat(7) })
  },
  {
    weight: 1,
    arbitrary: fc.record({
      _tag: fc.constant("Resize" as const),
      capacity: fc.integer({ min: 2, max: 24 }),
      extra: fc.integer({ min: 0, max: 4 })
    })
  },
  {
    weight: 1,
    arbitrary: fc.record({ _tag: fc.constant("FailInUse" as const), count: fc.integer({ min: 1, max: 4 }) })
  },
  {
    weight: 1,
    arbitrary: fc.record({
      _tag: fc.constant("InterruptInUse" as const),
      count: fc.integer({ min: 1, max: 4 })
    })
  },
  { weight: 1, arbitrary: fc.record({ _tag: fc.constant("InterruptWaiter" as const), pick: fc.nat(7) }) },
  { weight: 1, arbitrary: fc.record({ _tag: fc.constant("AwaitNormal" as const) }) }
)

const setup = fc
  .record({
    capacity: fc.integer({ min: 2, max: 24 }),
    extra: fc.integer({ min: 0, max: 4 }),
    low: fc.constantFrom(0, 0.25, 0.5),
    high: fc.constantFrom(0.5, 0.75, 0.875, 1)
  })
  .filter(({ capacity, high, low }) => configFor(capacity, low, high, capacity) !== undefined)

// Lets published watermark states and woken fibers catch up with the synchronous core.
const settle = Effect.gen(function* () {
  for (let i = 0; i < 12; i++) yield* Effect.yieldNow()
})

interface Held {
  readonly block: BufferPool.Block
  readonly tag: number
  scope: number
}

const runScenario = (
  init: { capacity: number; extra: number; low: number; high: number },
  commands: ReadonlyArray<Command>
) =>
  Effect.gen(function* () {
    const poolScope = yield* Scope.make()
    const pool = yield* BufferPool.make({
      blockSize: BLOCK,
      capacity: init.capacity * BLOCK,
      hardLimit: (init.capacity + init.extra) * BLOCK,
      lowWatermark: init.low,
      highWatermark: init.high
    }).pipe(Scope.extend(poolScope))
    const model = new Model(configFor(init.capacity, init.low, init.high, init.capacity + init.extra)!)

    const published: Array<BufferPool.Watermark> = []
    const watcher = yield* pool.watermark.changes.pipe(
      Stream.runForEach((state) => Effect.sync(() => published.push(state))),
      Effect.fork
    )
    yield* settle

    const scopes: Array<Scope.CloseableScope> = [yield* Scope.make(), yield* Scope.make()]
    const closedScopes = new Set<number>()
    const held: Array<Held> = []
    let nextTag = 1
    const tagOf = (block: BufferPool.Block) =>
      new DataView(block.bytes.buffer, block.bytes.byteOffset, 4).getUint32(0)
    const adopt = (blocks: ReadonlyArray<BufferPool.Block>, scope: number) => {
      for (const block of blocks) {
        const tag = nextTag++
        new DataView(block.bytes.buffer, block.bytes.byteOffset, 4).setUint32(0, tag)
        held.push({ block, tag, scope })
      }
    }
    const waiters: Array<{
      id: number
      scope: number
      fiber: Fiber.RuntimeFiber<BufferPool.Acquired<ReadonlyArray<BufferPool.Block>>, unknown>
    }> = []
    const servedOrder: Array<number> = []
    const normalDone: Array<number> = []
    const normalFibers: Array<Fiber.RuntimeFiber<void>> = []
    let nextWaiter = 1

    const openScopes = () => scopes.map((_, i) => i).filter((i) => !closedScopes.has(i))

    const check = (where: string) =>
      Effect.gen(function* () {
        yield* settle
        // Served waiters hand their blocks to the harness once their fibers resume.
        for (const w of waiters.splice(0)) {
          const exit = w.fiber.unsafePoll()
          if (exit === null) {
            waiters.push(w)
          } else if (Exit.isSuccess(exit)) {
            adopt(exit.value.value, w.scope)
          }
        }
        const stats = yield* pool.stats
        const at = `${where}: ${JSON.stringify({ model: { inUse: model.inUse, ex: model.exceeded, t: model.transitions }, stats: { inUse: stats.inUse, ex: stats.exceeded } })}`
        assert.strictEqual(stats.inUse, model.inUse, at)
        assert.isAtLeast(stats.inUse, 0, at)
        assert.strictEqual(stats.exceeded, model.exceeded, at)
        assert.strictEqual(pool.unsafeIsExceeded(), model.exceeded, at)
        assert.strictEqual(stats.exceededTransitions, Math.ceil(model.transitions / 2), at)
        assert.strictEqual(stats.waiting, model.queue.length, at)
        assert.deepStrictEqual(servedOrder, model.served, at)
        assert.deepStrictEqual([...normalDone].sort(), [...model.woken].sort(), at)
        // One owner per block: every live lease still reads back its own tag, at its own address.
        const addresses = new Set<string>()
        for (const h of held) {
          assert.isFalse(h.block.released, at)
          assert.strictEqual(tagOf(h.block), h.tag, at)
          addresses.add(
            `${(h.block.bytes.buffer as SharedArrayBuffer).byteLength}:${h.block.bytes.byteOffset}:${poolSlab(h.block)}`
          )
        }
        assert.strictEqual(addresses.size, held.length, at)
        // The published states so far are a prefix of the transitions, in order, none skipped.
        published.forEach((state, i) => {
          assert.strictEqual(state.transitions, i, at)
          assert.strictEqual(state.exceeded, i % 2 === 1, at)
        })
      })

    // Slabs are distinct SharedArrayBuffers; index them so addresses are comparable.
    const slabIds = new WeakMap<ArrayBufferLike, number>()
    let slabCount = 0
    const poolSlab = (block: BufferPool.Block) => {
      const buffer = block.bytes.buffer
      let id = slabIds.get(buffer)
      if (id === undefined) slabIds.set(buffer, (id = slabCount++))
      return id
    }

    for (const [step, cmd] of commands.entries()) {
      const where = `step ${step} ${JSON.stringify(cmd)}`
      switch (cmd._tag) {
        case "OpenScope": {
          scopes.push(yield* Scope.make())
          break
        }
        case "Acquire": {
          const open = openScopes()
          if (open.length === 0) break
          const scope = open[cmd.scope % open.length]!
          if (cmd.count > model.config.hard) {
            const error = yield* Effect.flip(
              pool.acquireMany(cmd.count, "read").pipe(Scope.extend(scopes[scope]!))
            )
            assert.strictEqual(error._tag, "PoolExhausted", where)
            break
          }
          if (model.fits(cmd.count)) {
            const { value, exceeded } = yield* (
              cmd.wait ? pool.acquireMany(cmd.count, "write") : pool.tryAcquireMany(cmd.count, "write")
            ).pipe(Scope.extend(scopes[scope]!))
            model.take(cmd.count)
            // The real pool against the model: the blocks asked for, in use as the model says,
            // never past the hard limit.
            const stats = pool.unsafeStats()
            assert.strictEqual(value.length, cmd.count, where)
            assert.strictEqual(exceeded, model.exceeded, where)
            assert.strictEqual(stats.inUse, model.inUse, where)
            assert.isAtMost(stats.inUse, stats.hardLimitBlocks, where)
            assert.strictEqual(stats.hardLimitBlocks, model.config.hard, where)
            adopt(value, scope)
          } else if (!cmd.wait) {
            const error = yield* Effect.flip(
              pool.tryAcquireMany(cmd.count, "write").pipe(Scope.extend(scopes[scope]!))
            )
            assert.strictEqual(error._tag, "PoolExhausted", where)
          } else {
            // Queues in its own scope; the harness closes it once served.
            const id = nextWaiter++
            const own = yield* Scope.make()
            scopes.push(own)
            const fiber = yield* pool.acquireMany(cmd.count, "hash").pipe(
              Scope.extend(own),
              Effect.tap(() => Effect.sync(() => servedOrder.push(id))),
              Effect.fork
            )
            model.queue.push({ id, count: cmd.count })
            waiters.push({ id, scope: scopes.length - 1, fiber })
          }
          break
        }
        case "Release": {
          if (held.length === 0) break
          const [h] = held.splice(cmd.pick % held.length, 1)
          h!.block.release()
          model.release(1)
          break
        }
        case "CloseScope": {
          const pending = new Set(waiters.map((w) => w.scope))
          const open = openScopes().filter((i) => !pending.has(i))
          if (open.length === 0) break
          const scope = open[cmd.scope % open.length]!
          const mine = held.filter((h) => h.scope === scope)
          for (const h of mine) held.splice(held.indexOf(h), 1)
          closedScopes.add(scope)
          yield* Scope.close(scopes[scope]!, Exit.void)
          model.release(mine.length)
          break
        }
        case "Transfer": {
          const open = openScopes()
          if (held.length === 0 || open.length === 0) break
          const h = held[cmd.pick % held.length]!
          const to = open[cmd.scope % open.length]!
          yield* pool.transfer([h.block], scopes[to]!)
          h.scope = to
          break
        }
        case "Resize": {
          const next = configFor(cmd.capacity, init.low, init.high, cmd.capacity + cmd.extra)
          const result = yield* Effect.either(
            pool.resize(cmd.capacity * BLOCK, (cmd.capacity + cmd.extra) * BLOCK)
          )
          if (next === undefined) {
            assert.isTrue(result._tag === "Left", where)
          } else {
            assert.isTrue(result._tag === "Right", where)
            model.resize(next)
          }
          break
        }
        case "FailInUse": {
          if (!model.fits(cmd.count)) break
          const exit = yield* Effect.exit(
            pool.withBlocks(cmd.count, "read", () => Effect.fail("boom" as const))
          )
          assert.isTrue(Exit.isFailure(exit), where)
          model.take(cmd.count)
          model.release(cmd.count)
          break
        }
        case "InterruptInUse": {
          if (!model.fits(cmd.count)) break
          const fiber = yield* Effect.fork(
            Effect.scoped(Effect.zipRight(pool.acquireMany(cmd.count, "read"), Effect.never))
          )
          yield* settle
          model.take(cmd.count)
          yield* Fiber.interrupt(fiber)
          model.release(cmd.count)
          break
        }
        case "InterruptWaiter": {
          if (waiters.length === 0) break
          const w = waiters[cmd.pick % waiters.length]!
          if (w.fiber.unsafePoll() !== null) break
          if (!model.queue.some((q) => q.id === w.id)) break // served, not yet resumed: settle first
          yield* Fiber.interrupt(w.fiber)
          waiters.splice(waiters.indexOf(w), 1)
          model.cancel(w.id)
          // Its scope may hold blocks handed to it meanwhile.
          const mine = held.filter((h) => h.scope === w.scope)
          for (const h of mine) held.splice(held.indexOf(h), 1)
          closedScopes.add(w.scope)
          yield* Scope.close(scopes[w.scope]!, Exit.void)
          model.release(mine.length)
          break
        }
        case "AwaitNormal": {
          const id = nextWaiter++
          normalFibers.push(
            yield* Effect.fork(
              Effect.zipRight(
                pool.awaitNormal,
                Effect.sync(() => void normalDone.push(id))
              )
            )
          )
          model.awaitNormal(id)
          break
        }
      }
      yield* check(where)
    }

    // Everything closes: no leaks, whatever happened above.
    // One at a time: cancelling one may serve the next, which then completes and is adopted.
    while (waiters.length > 0) {
      const w = waiters.shift()!
      const exit = yield* Fiber.interrupt(w.fiber)
      if (Exit.isSuccess(exit)) adopt(exit.value.value, w.scope)
      else model.cancel(w.id)
      yield* check(`interrupting waiter ${w.id}`)
    }
    for (const [i, scope] of scopes.entries()) {
      if (closedScopes.has(i)) continue
      const mine = held.filter((h) => h.scope === i)
      for (const h of mine) held.splice(held.indexOf(h), 1)
      yield* Scope.close(scope, Exit.void)
      model.release(mine.length)
      yield* check(`closing scope ${i}`)
    }
    const stats = yield* pool.stats
    assert.strictEqual(stats.inUse, 0)
    assert.strictEqual(stats.waiting, 0)
    assert.isFalse(stats.exceeded)
    // Every awaitNormal fiber woke exactly once (a fiber completes once; none is left waiting).
    for (const f of normalFibers) assert.isTrue(f.unsafePoll() !== null)
    assert.strictEqual(normalDone.length, new Set(normalDone).size)
    assert.strictEqual(published.length, model.transitions + 1)
    yield* Fiber.interrupt(watcher)
    yield* Scope.close(poolScope, Exit.void)
    return true
  })

describe("BufferPool properties", () => {
  it.live.prop(
    "matches the reference model under random acquire/release/resize/failure/interruption",
    { init: setup, commands: fc.array(command, { minLength: 1, maxLength: 24 }) },
    ({ commands, init }) => runScenario(init, commands),
    { fastCheck: { numRuns: RUNS }, timeout: 240_000 }
  )

  // The hysteresis on its own, over many more steps than the scenarios take.
  it.prop(
    "the watermark state follows the hysteresis exactly",
    {
      init: setup,
      deltas: fc.array(fc.integer({ min: -6, max: 6 }), { maxLength: 200 })
    },
    ({ deltas, init }) =>
      Effect.runSync(
        Effect.scoped(
          Effect.gen(function* () {
            const pool = yield* BufferPool.make({
              blockSize: BLOCK,
              capacity: init.capacity * BLOCK,
              lowWatermark: init.low,
              highWatermark: init.high
            })
            const cfg = configFor(init.capacity, init.low, init.high, init.capacity)!
            const held: Array<BufferPool.Block> = []
            let exceeded = false
            for (const delta of deltas) {
              for (let i = 0; i < Math.abs(delta); i++) {
                if (delta > 0) {
                  const block = pool.unsafeTryAcquire("read")
                  if (block === undefined) {
                    if (held.length !== cfg.hard) return false
                    continue
                  }
                  held.push(block)
                } else if (held.length > 0) {
                  held.pop()!.release()
                }
                if (held.length >= cfg.high) exceeded = true
                if (held.length <= cfg.low) exceeded = false
                if (pool.unsafeIsExceeded() !== exceeded) return false
              }
            }
            for (const block of held) block.release()
            return (yield* pool.stats).inUse === 0
          })
        )
      ),
    { fastCheck: { numRuns: RUNS } }
  )
})
