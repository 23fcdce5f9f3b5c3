/**
 * A write flood (downloading peers) and a read-heavy seeding load (uploading peers) sharing one
 * pool over a slow disk: backpressure, not starvation, keeps memory bounded.
 */
import { assert, describe, it } from "@effect/vitest"
import { BufferPool } from "@ezio/pool"
import { Hasher, Layout } from "@ezio/storage"
import { Effect, Fiber } from "effect"
import { DiskIo } from "../src/index.js"
import { BLOCK, concat, controlled, hex, random, sha1 } from "./util.js"

const PIECE_BLOCKS = 8
const layout = Layout.make({
  name: "flood",
  pieceLength: PIECE_BLOCKS * BLOCK,
  files: [{ path: ["flood.bin"], length: 64 * PIECE_BLOCKS * BLOCK }]
})
const data = random(layout.totalLength, 2024)
const SEEDED = 32 // pieces 0..31 are seeded (read), 32..63 downloaded (written)
const HARD = 64

describe("backpressure", () => {
  const scenario = (respectWatermark: boolean) =>
    Effect.gen(function* () {
      const pool = yield* BufferPool.make({
        blockSize: BLOCK,
        capacity: HARD * BLOCK,
        lowWatermark: 0.5,
        highWatermark: 0.75
      })
      yield* Effect.scoped(
        Effect.gen(function* () {
          const disk = yield* DiskIo.make({ aioThreads: 2 }).pipe(
            Effect.provideService(BufferPool.BufferPool, pool),
            Effect.provideService(Hasher.Hasher, Hasher.makeInline())
          )
          // A slow disk: every write takes a millisecond, reads a few turns.
          const storage = yield* controlled(layout, {
            beforeWrite: () => Effect.sleep("1 millis"),
            beforeRead: () => Effect.repeatN(Effect.yieldNow(), 2)
          })
          storage.bytes.set(data.subarray(0, SEEDED * PIECE_BLOCKS * BLOCK))
          const t = yield* disk.addTorrent(storage)

          let peak = 0
          let sampling = true
          let readsDone = 0
          let readsWhileExceeded = 0
          let writesDone = 0
          let writesWhileReading = 0
          let pauses = 0
          const sample = () => {
            const inUse = pool.unsafeStats().inUse
            if (inUse > peak) peak = inUse
          }
          const sampler = yield* Effect.fork(
            Effect.whileLoop({
              while: () => sampling,
              body: () => Effect.zipRight(Effect.sync(sample), Effect.yieldNow()),
              step: () => {}
            })
          )

          // Four downloading peers, each receiving 8 pieces: a block arrives (a pool block), goes
          // to the engine; if the pool is past its high watermark the peer stops reading its
          // socket until the pool is back to normal.
          const downloader = (peer: number) =>
            Effect.gen(function* () {
              for (let i = 0; i < 8; i++) {
                const piece = SEEDED + peer * 8 + i
                for (let b = 0; b < PIECE_BLOCKS; b++) {
                  // The engine takes the block over from the peer's scope (closing it releases nothing).
                  const { exceeded } = yield* Effect.scoped(
                    Effect.flatMap(pool.acquire("write"), (a) => {
                      a.value.bytes.set(
                        data.subarray(piece * layout.pieceLength + b * BLOCK).subarray(0, BLOCK)
                      )
                      return disk.write(t, piece, b * BLOCK, a.value)
                    })
                  )
                  sample()
                  writesDone++
                  if (readsDone < 4 * 60) writesWhileReading++
                  if (exceeded && respectWatermark) {
                    pauses++
                    yield* pool.awaitNormal
                  }
                }
              }
            })

          // Four uploading peers, each serving 60 requests of two blocks at random places.
          const uploader = (peer: number) =>
            Effect.gen(function* () {
              const offsets = random(60 * 2, 100 + peer)
              for (let i = 0; i < 60; i++) {
                const piece = offsets[2 * i]! % SEEDED
                const offset = (offsets[2 * i + 1]! % PIECE_BLOCKS) * (BLOCK / 2)
                const length = Math.min(2 * BLOCK, layout.pieceLength - offset)
                const read = yield* disk.readOwned(t, piece, offset, length)
                sample()
                const start = piece * layout.pieceLength + offset
                assert.strictEqual(hex(concat(read.views)), hex(data.subarray(start, start + length)))
                if (pool.unsafeIsExceeded()) readsWhileExceeded++
                // The socket takes a moment to send it.
                yield* Effect.repeatN(Effect.yieldNow(), 3)
                read.release()
                readsDone++
              }
            })

          const fibers = [...[0, 1, 2, 3].map((p) => downloader(p)), ...[0, 1, 2, 3].map((p) => uploader(p))]
          yield* Effect.all(fibers, { concurrency: "unbounded", discard: true })
          yield* disk.flush(t)
          sampling = false
          yield* Fiber.join(sampler)

          // Everything written is on storage and verifies.
          for (let piece = SEEDED; piece < 64; piece++) {
            const hashed = yield* disk.hash(t, piece)
            const start = piece * layout.pieceLength
            assert.strictEqual(hex(hashed.sha1), hex(sha1(data.subarray(start, start + layout.pieceLength))))
          }
          const stats = pool.unsafeStats()
          assert.isAtMost(peak, HARD, "in use never above the hard limit")
          assert.isAtMost(stats.peak, HARD)
          assert.strictEqual(readsDone, 240)
          assert.strictEqual(writesDone, 32 * PIECE_BLOCKS)
          // The pool went past its high watermark while reads kept being served.
          assert.isAbove(stats.exceededTransitions, 0)
          assert.isAbove(readsWhileExceeded, 0)
          if (respectWatermark) {
            // Backpressure: writers paused, and nobody had to queue at the hard limit.
            assert.isAbove(pauses, 0)
            assert.strictEqual(stats.waits, 0, "no acquisition queued at the hard limit")
          } else {
            // Peers ignoring the watermark fill the pool: reads and writes then queue for blocks
            // (first come, first served) instead of failing or passing the limit, and all finish.
            assert.isAbove(stats.waits, 0)
          }
          assert.isAbove(writesWhileReading, 0)
          assert.strictEqual(disk.unsafeStats().storeBufferBlocks, 0)
        })
      )
      assert.strictEqual(pool.unsafeStats().inUse, 0)
    }).pipe(Effect.scoped)

  it.live("a write flood and a seeding load share the pool; in-use never passes the hard limit", () =>
    scenario(true)
  )

  it.live("peers that ignore the watermark wait at the hard limit; neither side starves", () =>
    scenario(false)
  )
})
