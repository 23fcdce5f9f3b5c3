import { assert, describe, it, layer } from "@effect/vitest"
import { ConfigProvider, Effect, Exit, Fiber, Logger, Ref, Scope, Stream, SubscriptionRef } from "effect"
import { BufferPool, PoolError } from "../src/index.js"

const KiB = 1024
// 16 blocks of 1 KiB: low watermark 8, high 14 (7/8), hard limit 16.
const small: BufferPool.Options = { blockSize: KiB, capacity: 16 * KiB, name: "test" }

describe("BufferPool", () => {
  describe("options", () => {
    const invalid = (options: BufferPool.Options, option: string) =>
      it.scoped(`rejects ${JSON.stringify(options)} naming ${option}`, () =>
        Effect.gen(function* () {
          const error = yield* Effect.flip(BufferPool.make(options))
          assert.strictEqual(error._tag, "InvalidPoolOptions")
          assert.strictEqual(error.option, option)
          assert.include(error.message, option)
        })
      )
    invalid({ blockSize: 1000 }, "blockSize")
    invalid({ blockSize: 256 }, "blockSize")
    invalid({ capacity: 0 }, "capacity")
    invalid({ blockSize: KiB, capacity: 1500 }, "capacity")
    invalid({ lowWatermark: 1.2 }, "lowWatermark")
    invalid({ highWatermark: 0 }, "highWatermark")
    invalid({ lowWatermark: 0.9, highWatermark: 0.8 }, "lowWatermark")
    invalid({ capacity: 1024 * KiB, hardLimit: 512 * KiB }, "hardLimit")
    invalid({ blockSize: KiB, capacity: 16 * KiB, hardLimit: 16 * KiB + 1 }, "hardLimit")

    it.scoped("defaults: 16 KiB blocks, 256 MiB, watermarks at 1/2 and 7/8, hard limit = capacity", () =>
      Effect.gen(function* () {
        const pool = yield* BufferPool.make()
        const stats = yield* pool.stats
        assert.strictEqual(stats.blockSize, 16 * KiB)
        assert.strictEqual(stats.capacityBlocks, 16384)
        assert.strictEqual(stats.lowWatermarkBlocks, 8192)
        assert.strictEqual(stats.highWatermarkBlocks, 14336)
        assert.strictEqual(stats.hardLimitBlocks, 16384)
        // Nothing committed until used.
        assert.strictEqual(stats.allocatedBlocks, 0)
      })
    )

    it.effect("layerConfig reads sizes with units from the environment-style provider", () =>
      Effect.gen(function* () {
        const stats = yield* Effect.flatMap(BufferPool.BufferPool, (pool) => pool.stats).pipe(
          Effect.provide(BufferPool.layerConfig()),
          Effect.withConfigProvider(
            ConfigProvider.fromMap(
              new Map([
                ["POOL_CAPACITY", "64MiB"],
                ["POOL_HARD_LIMIT", "80MiB"],
                ["POOL_HIGH_WATERMARK", "0.75"]
              ]),
              { pathDelim: "_" }
            ).pipe(ConfigProvider.constantCase)
          )
        )
        assert.strictEqual(stats.capacityBlocks, 4096)
        assert.strictEqual(stats.hardLimitBlocks, 5120)
        assert.strictEqual(stats.highWatermarkBlocks, 3072)
      })
    )

    it.effect("layerConfig reports a malformed size as a ConfigError", () =>
      Effect.gen(function* () {
        const error = yield* Effect.flip(
          Effect.flatMap(BufferPool.BufferPool, (pool) => pool.stats).pipe(
            Effect.provide(BufferPool.layerConfig()),
            Effect.withConfigProvider(
              ConfigProvider.fromMap(new Map([["POOL_CAPACITY", "lots"]]), { pathDelim: "_" }).pipe(
                ConfigProvider.constantCase
              )
            )
          )
        )
        assert.strictEqual(error._tag, "ConfigError")
        assert.include(String(error), "expected a size")
      })
    )
  })

  describe("scoped acquisition", () => {
    it.scoped("withBlocks waiting at the hard limit can be interrupted, and leaves nothing behind", () =>
      Effect.gen(function* () {
        const pool = yield* BufferPool.make(small)
        const { hardLimitBlocks } = yield* pool.stats
        const holding = yield* Effect.fork(pool.withBlocks(hardLimitBlocks, "read", () => Effect.never))
        yield* Effect.yieldNow()
        const waiting = yield* Effect.fork(pool.withBlocks(1, "write", () => Effect.void))
        yield* Effect.yieldNow()
        assert.strictEqual((yield* pool.stats).waiting, 1)
        yield* Fiber.interrupt(waiting)
        assert.strictEqual((yield* pool.stats).waiting, 0)
        yield* Fiber.interrupt(holding)
        assert.strictEqual((yield* pool.stats).inUse, 0)
      })
    )

    it.scoped("a block goes back when its scope closes, on success, failure and interruption", () =>
      Effect.gen(function* () {
        const pool = yield* BufferPool.make(small)
        yield* Effect.scoped(pool.acquire("read"))
        assert.strictEqual((yield* pool.stats).inUse, 0)
        yield* Effect.scoped(Effect.zipRight(pool.acquireMany(3, "write"), Effect.fail("boom"))).pipe(
          Effect.exit
        )
        assert.strictEqual((yield* pool.stats).inUse, 0)
        const fiber = yield* Effect.fork(
          Effect.scoped(Effect.zipRight(pool.acquireMany(4, "hash"), Effect.never))
        )
        yield* Effect.yieldNow()
        assert.strictEqual((yield* pool.stats).inUse, 4)
        yield* Fiber.interrupt(fiber)
        assert.strictEqual((yield* pool.stats).inUse, 0)
      })
    )

    it.scoped("blocks are 16 KiB views of shared memory, and distinct", () =>
      Effect.gen(function* () {
        const pool = yield* BufferPool.make({ capacity: 1024 * 1024 })
        const { value: blocks } = yield* pool.acquireMany(4, "read")
        const seen = new Set<number>()
        for (const block of blocks) {
          assert.strictEqual(block.bytes.byteLength, 16 * KiB)
          assert.instanceOf(block.bytes.buffer, SharedArrayBuffer)
          seen.add(block.bytes.byteOffset + (block.bytes.buffer as SharedArrayBuffer).byteLength * 0)
        }
        assert.strictEqual(seen.size, 4)
      })
    )

    it.scoped("releasing twice is a defect, and so is reading bytes after release", () =>
      Effect.gen(function* () {
        const pool = yield* BufferPool.make(small)
        const block = pool.unsafeTryAcquire("read")!
        block.release()
        assert.isTrue(block.released)
        assert.throws(() => block.release(), /released twice/)
        assert.throws(() => block.bytes, /used after it was released/)
        const error = (() => {
          try {
            block.release()
          } catch (e) {
            return e
          }
        })()
        assert.instanceOf(error, PoolError.BlockOwnershipError)
        assert.strictEqual((yield* pool.stats).inUse, 0)
      })
    )

    it.scoped("a stale handle cannot touch the slot's next owner", () =>
      Effect.gen(function* () {
        const pool = yield* BufferPool.make({ ...small, capacity: KiB, hardLimit: KiB, lowWatermark: 0 })
        const first = pool.unsafeTryAcquire("read")!
        first.release()
        const second = pool.unsafeTryAcquire("write")!
        second.bytes[0] = 7
        assert.throws(() => first.bytes)
        assert.throws(() => first.release())
        assert.isFalse(second.released)
        second.release()
      })
    )

    it.scoped("releasing early is fine: the scope then skips the block", () =>
      Effect.gen(function* () {
        const pool = yield* BufferPool.make(small)
        yield* Effect.scoped(
          Effect.gen(function* () {
            const { value: blocks } = yield* pool.acquireMany(2, "read")
            blocks[0]!.release()
            assert.strictEqual((yield* pool.stats).inUse, 1)
          })
        )
        assert.strictEqual((yield* pool.stats).inUse, 0)
      })
    )

    it.scoped("a block from another pool is refused", () =>
      Effect.gen(function* () {
        const a = yield* BufferPool.make(small)
        const b = yield* BufferPool.make(small)
        const block = a.unsafeTryAcquire("read")!
        const exit = yield* Effect.exit(
          Effect.scoped(Effect.flatMap(Effect.scope, (s) => b.transfer([block], s)))
        )
        assert.isTrue(Exit.isFailure(exit) && exit.cause._tag === "Die")
        block.release()
      })
    )
  })

  describe("hand-off between fibers", () => {
    it.scoped("transfer moves the release to the receiver's scope, without copying", () =>
      Effect.gen(function* () {
        const pool = yield* BufferPool.make(small)
        const receiver = yield* Scope.make()
        const bytes = yield* Effect.scoped(
          Effect.gen(function* () {
            const { value: block } = yield* pool.acquire("read")
            block.bytes[0] = 42
            yield* pool.transfer([block], receiver)
            return block.bytes
          })
        )
        // The sender's scope has closed; the block is still the receiver's.
        assert.strictEqual((yield* pool.stats).inUse, 1)
        assert.strictEqual(bytes[0], 42)
        yield* Scope.close(receiver, Exit.void)
        assert.strictEqual((yield* pool.stats).inUse, 0)
      })
    )

    it.scoped(
      "unsafeTransfer hands blocks to a scope as a plain call, and throws what transfer dies with",
      () =>
        Effect.gen(function* () {
          const pool = yield* BufferPool.make(small)
          const other = yield* BufferPool.make(small)
          const receiver = yield* Scope.make()
          const first = pool.unsafeTryAcquire("write")!
          const second = pool.unsafeTryAcquire("write")!
          // The first hand-off to a scope adds its finalizer, the next ones only hold.
          pool.unsafeTransfer([first], receiver)
          pool.unsafeTransfer([second], receiver)
          assert.strictEqual((yield* pool.stats).inUse, 2)
          const foreign = other.unsafeTryAcquire("write")!
          assert.throws(() => pool.unsafeTransfer([foreign], receiver), /does not belong to/)
          foreign.release()
          const released = pool.unsafeTryAcquire("write")!
          released.release()
          assert.throws(() => pool.unsafeTransfer([released], receiver), /used after it was released/)
          yield* Scope.close(receiver, Exit.void)
          assert.strictEqual((yield* pool.stats).inUse, 0)
          assert.isTrue(first.released && second.released)
        })
    )

    it.scoped("withBlocks releases what use did not hand off", () =>
      Effect.gen(function* () {
        const pool = yield* BufferPool.make(small)
        const receiver = yield* Scope.make()
        yield* pool.withBlocks(3, "read", (blocks) => pool.transfer([blocks[1]!], receiver))
        assert.strictEqual((yield* pool.stats).inUse, 1)
        yield* Scope.close(receiver, Exit.void)
        assert.strictEqual((yield* pool.stats).inUse, 0)
        const exit = yield* Effect.exit(pool.withBlocks(2, "write", () => Effect.fail("nope")))
        assert.isTrue(Exit.isFailure(exit))
        assert.strictEqual((yield* pool.stats).inUse, 0)
      })
    )
  })

  describe("hard limit", () => {
    it.scoped("tryAcquire fails with PoolExhausted; acquire waits its turn, first come first served", () =>
      Effect.gen(function* () {
        const pool = yield* BufferPool.make(small)
        const held = yield* Scope.make()
        const { value: all } = yield* pool.acquireMany(16, "read").pipe(Scope.extend(held))
        const error = yield* Effect.flip(Effect.scoped(pool.tryAcquire("write")))
        assert.isTrue(error._tag === "PoolExhausted" && error.inUse === 16)
        const order = yield* Ref.make<Array<string>>([])
        const waiter = (name: string, count: number) =>
          Effect.scoped(
            Effect.zipRight(
              pool.acquireMany(count, "write"),
              Ref.update(order, (o) => [...o, name])
            )
          ).pipe(Effect.fork)
        const a = yield* waiter("a", 4)
        yield* Effect.yieldNow()
        const b = yield* waiter("b", 1)
        yield* Effect.yieldNow()
        assert.strictEqual((yield* pool.stats).waiting, 2)
        // One block back: b's single block would fit, but a is first and needs 4.
        all[0]!.release()
        yield* Effect.yieldNow()
        assert.deepStrictEqual(yield* Ref.get(order), [])
        for (const block of all.slice(1, 4)) block.release()
        yield* Fiber.join(a)
        yield* Fiber.join(b)
        assert.deepStrictEqual(yield* Ref.get(order), ["a", "b"])
        assert.strictEqual((yield* pool.stats).waits, 2)
        yield* Scope.close(held, Exit.void)
        assert.strictEqual((yield* pool.stats).inUse, 0)
      })
    )

    it.scoped("asking for more than the hard limit fails at once", () =>
      Effect.gen(function* () {
        const pool = yield* BufferPool.make(small)
        const error = yield* Effect.flip(Effect.scoped(pool.acquireMany(17, "read")))
        assert.strictEqual(error._tag, "PoolExhausted")
        assert.include(error.message, "could ever hold")
      })
    )

    it.scoped("an interrupted waiter leaves the queue and the next one is served", () =>
      Effect.gen(function* () {
        const pool = yield* BufferPool.make(small)
        const blocks: Array<BufferPool.Block> = []
        for (let i = 0; i < 16; i++) blocks.push(pool.unsafeTryAcquire("read")!)
        const big = yield* Effect.fork(Effect.scoped(pool.acquireMany(8, "read")))
        const next = yield* Effect.fork(Effect.scoped(pool.acquireMany(1, "read")))
        yield* Effect.yieldNow()
        blocks.pop()!.release()
        yield* Fiber.interrupt(big)
        yield* Fiber.join(next)
        assert.strictEqual((yield* pool.stats).inUse, 15)
        for (const block of blocks) block.release()
        assert.strictEqual((yield* pool.stats).inUse, 0)
      })
    )
  })

  describe("watermarks", () => {
    it.scoped("exceeded at the high watermark, normal again only at the low one", () =>
      Effect.gen(function* () {
        const pool = yield* BufferPool.make(small)
        const blocks: Array<BufferPool.Block> = []
        for (let i = 0; i < 13; i++) blocks.push(pool.unsafeTryAcquire("write")!)
        assert.isFalse(pool.unsafeIsExceeded())
        const { exceeded } = yield* pool.acquire("write")
        assert.isTrue(exceeded)
        while (blocks.length > 8) {
          assert.isTrue(pool.unsafeIsExceeded())
          blocks.pop()!.release()
        }
        // 8 + the scoped one = 9 in use: still above the low watermark of 8.
        assert.isTrue(pool.unsafeIsExceeded())
        blocks.pop()!.release()
        assert.isFalse(pool.unsafeIsExceeded())
        for (const block of blocks) block.release()
      })
    )

    it.scopedLive(
      "every waiter wakes once, on the transition back to normal, through the SubscriptionRef",
      () =>
        Effect.gen(function* () {
          const pool = yield* BufferPool.make(small)
          const blocks: Array<BufferPool.Block> = []
          for (let i = 0; i < 14; i++) blocks.push(pool.unsafeTryAcquire("write")!)
          const woken = yield* Ref.make(0)
          const waiters = yield* Effect.forEach(
            [1, 2, 3],
            () =>
              Effect.fork(
                Effect.zipRight(
                  pool.awaitNormal,
                  Ref.update(woken, (n) => n + 1)
                )
              ),
            { concurrency: "unbounded" }
          )
          yield* Effect.sleep("5 millis")
          while (blocks.length > 9) blocks.pop()!.release()
          yield* Effect.sleep("5 millis")
          assert.strictEqual(yield* Ref.get(woken), 0)
          blocks.pop()!.release()
          yield* Fiber.joinAll(waiters)
          assert.strictEqual(yield* Ref.get(woken), 3)
          const state = yield* SubscriptionRef.get(pool.watermark)
          assert.deepStrictEqual(state, { exceeded: false, transitions: 2, inUse: 8 })
          for (const block of blocks) block.release()
        })
    )

    it.scoped("resize applies new watermarks at once and keeps blocks valid", () =>
      Effect.gen(function* () {
        const pool = yield* BufferPool.make(small)
        const { value: blocks } = yield* pool.acquireMany(10, "read")
        blocks[3]!.bytes[0] = 9
        assert.isFalse(pool.unsafeIsExceeded())
        yield* pool.resize(8 * KiB)
        // High watermark is now 7 blocks: exceeded; the hard limit of 8 is below the 10 in use.
        assert.isTrue(pool.unsafeIsExceeded())
        assert.strictEqual(blocks[3]!.bytes[0], 9)
        const error = yield* Effect.flip(Effect.scoped(pool.tryAcquire("read")))
        assert.strictEqual(error._tag, "PoolExhausted")
        const grown = yield* Effect.fork(Effect.scoped(pool.acquire("read")))
        yield* Effect.yieldNow()
        yield* pool.resize(64 * KiB)
        yield* Fiber.join(grown)
        assert.isFalse(pool.unsafeIsExceeded())
        const bad = yield* Effect.flip(pool.resize(100))
        assert.strictEqual(bad.option, "capacity")
      })
    )
  })

  describe("closing", () => {
    it.effect(
      "a closed pool fails acquisitions and waiters with PoolClosed, and reports blocks still out",
      () =>
        Effect.gen(function* () {
          const logs: Array<string> = []
          const logger = Logger.make(({ message }) => {
            logs.push(String(Array.isArray(message) ? message.join(" ") : message))
          })
          const scope = yield* Scope.make()
          const pool = yield* BufferPool.make(small).pipe(
            Scope.extend(scope),
            // The pool's finalizer logs with the context it was made in.
            Effect.provide(Logger.replace(Logger.defaultLogger, logger))
          )
          const leaked = pool.unsafeTryAcquire("write")!
          const hold: Array<BufferPool.Block> = []
          for (let i = 0; i < 15; i++) hold.push(pool.unsafeTryAcquire("read")!)
          const waiter = yield* Effect.fork(Effect.scoped(pool.acquire("read")))
          yield* Effect.yieldNow()
          yield* Scope.close(scope, Exit.void)
          const waited = yield* Fiber.await(waiter)
          assert.isTrue(Exit.isFailure(waited))
          const error = yield* Effect.flip(Effect.scoped(pool.acquire("read")))
          assert.strictEqual(error._tag, "PoolClosed")
          assert.isTrue(logs.some((line) => line.includes("16 block(s) still in use")))
          leaked.release()
          for (const block of hold) block.release()
        })
    )
  })
})

layer(BufferPool.layer({ capacity: 4 * 1024 * 1024, name: "shared" }))("as a Layer", (it) => {
  it.effect("an app reads the pool from context", () =>
    Effect.gen(function* () {
      const pool = yield* BufferPool.BufferPool
      const n = yield* Effect.scoped(Effect.map(pool.acquireMany(8, "hash"), ({ value }) => value.length))
      assert.strictEqual(n, 8)
      assert.strictEqual((yield* pool.stats).inUse, 0)
    })
  )

  it.effect("watermark changes stream transitions in order", () =>
    Effect.gen(function* () {
      const pool = yield* BufferPool.BufferPool
      const seen = yield* pool.watermark.changes.pipe(Stream.take(1), Stream.runCollect)
      assert.strictEqual(seen.length, 1)
    })
  )
})
