/**
 * `maxQueuedBytes`: past it, a write reports `exceeded` while the pool is still far below its
 * watermark, and `awaitWritable` waits until the engine holds at most half of it: blocks waiting
 * for storage and blocks a hash is reading in place both count.
 */
import { assert, describe, it } from "@effect/vitest"
import { BufferPool } from "@ezio/pool"
import { Hasher } from "@ezio/storage"
import { Effect, Fiber, Layer, Queue } from "effect"
import { DiskIo } from "../src/index.js"
import { BLOCK, controlled, pieceBytes, poolOptions, random, sha1, smallLayout, writeBlocks } from "./util.js"

const data = random(smallLayout.totalLength, 18)
const pools = Layer.orDie(BufferPool.layer(poolOptions(64)))

/** Lets the scheduler run the engine's writers and callbacks. */
const settle = Effect.repeatN(Effect.yieldNow(), 20)

/** An inline hasher whose answers to `unsafeFinal` wait until `answer` is called. */
const heldHasher = () => {
  const inline = Hasher.makeInline()
  const waiting: Array<() => void> = []
  const service: Hasher.HasherService = {
    ...inline,
    begin: (options) => {
      const job = inline.begin(options)
      return { ...job, unsafeFinal: (views, done) => waiting.push(() => job.unsafeFinal(views, done)) }
    }
  }
  return { service, answer: () => waiting.splice(0).forEach((f) => f()) }
}

describe("DiskIo maxQueuedBytes", () => {
  it.live("past it a write reports exceeded below the pool's watermark; awaitWritable waits for half", () =>
    Effect.gen(function* () {
      const pool = yield* BufferPool.BufferPool
      const permits = yield* Queue.unbounded<void>()
      const storage = yield* controlled(smallLayout, { beforeWrite: () => Queue.take(permits) })
      const disk = yield* DiskIo.make({ maxQueuedBytes: 8 * BLOCK, writeCoalesceBlocks: 1 })
      const t = yield* disk.addTorrent(storage)
      // Two whole pieces: 8 blocks held, not more than the limit.
      assert.isFalse(yield* writeBlocks(disk, pool, t, 0, 0, pieceBytes(smallLayout, data, 0)))
      assert.isFalse(yield* writeBlocks(disk, pool, t, 1, 0, pieceBytes(smallLayout, data, 1)))
      // The ninth is past it; the pool (64 blocks, watermark 48) is not.
      assert.isTrue(
        yield* writeBlocks(disk, pool, t, 2, 0, pieceBytes(smallLayout, data, 2).subarray(0, BLOCK))
      )
      assert.isFalse(pool.unsafeIsExceeded())
      const waiting = yield* Effect.fork(disk.awaitWritable)
      yield* settle
      const seen: Array<{ readonly held: number; readonly done: boolean }> = []
      while (disk.unsafeStats().storeBufferBlocks > 0) {
        seen.push({ held: disk.unsafeStats().storeBufferBlocks, done: waiting.unsafePoll() !== null })
        yield* Queue.offer(permits, undefined)
        yield* Effect.sleep("2 millis")
      }
      yield* Fiber.join(waiting)
      assert.strictEqual(seen[0]!.held, 9)
      for (const s of seen) if (s.held > 4) assert.isFalse(s.done, `still waiting with ${s.held} blocks held`)
      // It ended while some blocks were still held: at half, not at empty.
      assert.isTrue(seen.some((s) => s.done && s.held > 0 && s.held <= 4))
    }).pipe(Effect.scoped, Effect.provide(Layer.merge(pools, Hasher.layerInline)))
  )

  it.live("blocks a hash reads in place count until it answers, also once they are written", () =>
    Effect.gen(function* () {
      const pool = yield* BufferPool.BufferPool
      const hasher = heldHasher()
      const disk = yield* DiskIo.make({ maxQueuedBytes: 4 * BLOCK }).pipe(
        Effect.provideService(Hasher.Hasher, hasher.service)
      )
      // Closing the engine waits for the hash: answer it first, also when an assertion fails.
      yield* Effect.addFinalizer(() => Effect.sync(hasher.answer))
      const t = yield* disk.addTorrent(yield* controlled(smallLayout))
      const piece = pieceBytes(smallLayout, data, 0)
      assert.isFalse(yield* writeBlocks(disk, pool, t, 0, 0, piece))
      let sha: Uint8Array | undefined
      disk.unsafeHash(t, 0, {}, (exit) => {
        if (exit._tag === "Success") sha = exit.value.sha1
      })
      yield* disk.flush(t)
      // Written, out of the store buffer, but pinned for the hash: still held.
      assert.strictEqual(disk.unsafeStats().storeBufferBlocks, 0)
      assert.isTrue(
        yield* writeBlocks(disk, pool, t, 1, 0, pieceBytes(smallLayout, data, 1).subarray(0, BLOCK))
      )
      const waiting = yield* Effect.fork(disk.awaitWritable)
      yield* disk.flush(t)
      yield* settle
      assert.isNull(waiting.unsafePoll(), "the pinned blocks still count")
      hasher.answer()
      yield* Fiber.join(waiting)
      yield* settle
      assert.deepStrictEqual(Buffer.from(sha!), Buffer.from(sha1(piece)))
    }).pipe(Effect.scoped, Effect.provide(pools))
  )

  it.effect(
    "held-back partial pieces in the way go at once: awaitWritable does not wait for writeDelay",
    () =>
      Effect.gen(function* () {
        const pool = yield* BufferPool.BufferPool
        const storage = yield* controlled(smallLayout)
        // Under the TestClock the writeDelay timer never fires by itself.
        const disk = yield* DiskIo.make({ maxQueuedBytes: 2 * BLOCK, writeDelay: "1 hour" })
        const t = yield* disk.addTorrent(storage)
        const partial = pieceBytes(smallLayout, data, 0).subarray(0, 3 * BLOCK)
        assert.isTrue(yield* writeBlocks(disk, pool, t, 0, 0, partial))
        yield* settle
        assert.strictEqual(storage.calls.writes, 0, "three blocks of a four-block piece are held back")
        yield* disk.awaitWritable
        assert.isAbove(storage.calls.writes, 0)
        assert.isAtMost(disk.unsafeStats().storeBufferBlocks, 1)
        assert.deepStrictEqual(Buffer.from(storage.bytes.subarray(0, partial.length)), Buffer.from(partial))
      }).pipe(Effect.scoped, Effect.provide(Layer.merge(pools, Hasher.layerInline)))
  )
})
