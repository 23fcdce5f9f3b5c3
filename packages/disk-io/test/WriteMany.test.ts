import { assert, describe, it } from "@effect/vitest"
import { BufferPool } from "@ezio/pool"
import { Hasher, Layout } from "@ezio/storage"
import { Effect, Layer } from "effect"
import { DiskIo } from "../src/index.js"
import { BLOCK, controlled, pieceBytes, poolOptions, random, sha1, smallLayout } from "./util.js"

const data = random(smallLayout.totalLength, 11)

/** A fresh engine (pool of `blocks`) and one torrent of the small layout on memory storage. */
const withTorrent = <A, E>(
  body: (torrent: {
    readonly disk: DiskIo.DiskIoService
    readonly pool: BufferPool.BufferPoolService
    readonly t: DiskIo.TorrentHandle
  }) => Effect.Effect<A, E, import("effect/Scope").Scope>,
  blocks = 64
) =>
  Effect.gen(function* () {
    const pool = yield* BufferPool.BufferPool
    const result = yield* Effect.scoped(
      Effect.gen(function* () {
        const disk = yield* DiskIo.make()
        const t = yield* disk.addTorrent(yield* controlled(smallLayout))
        return yield* body({ disk, pool, t })
      })
    )
    assert.strictEqual(pool.unsafeStats().inUse, 0, "every block back in the pool after the engine closed")
    return result
  }).pipe(Effect.provide(Layer.merge(Layer.orDie(BufferPool.layer(poolOptions(blocks))), Hasher.layerInline)))

/** The blocks of `piece` as `writeMany` writes, each in a fresh pool block. */
const blocksOf = (pool: BufferPool.BufferPoolService, piece: number): Array<DiskIo.BlockWrite> => {
  const bytes = pieceBytes(smallLayout, data, piece)
  const out: Array<DiskIo.BlockWrite> = []
  for (let offset = 0; offset < bytes.length; offset += BLOCK) {
    const chunk = bytes.subarray(offset, Math.min(bytes.length, offset + BLOCK))
    const block = pool.unsafeTryAcquire("write")!
    block.bytes.set(chunk)
    out.push(
      chunk.length === BLOCK ? { piece, offset, block } : { piece, offset, block, length: chunk.length }
    )
  }
  return out
}

describe("DiskIo.writeMany", () => {
  it.live("writes a batch as write does: readable at once, hashed, on storage after a flush", () =>
    withTorrent(({ disk, pool, t }) =>
      Effect.gen(function* () {
        const batch = [...blocksOf(pool, 0), ...blocksOf(pool, 3)]
        const written = yield* disk.writeMany(t, batch)
        assert.deepStrictEqual(written, { exceeded: false, failures: [] })
        assert.strictEqual(
          disk.unsafeStats().jobs.write.queued + disk.unsafeStats().jobs.write.running,
          batch.length
        )
        for (const piece of [0, 3]) {
          const expected = pieceBytes(smallLayout, data, piece)
          const read = yield* disk.readOwned(t, piece, 0, expected.length)
          assert.deepStrictEqual(Buffer.concat(read.views), Buffer.from(expected))
          read.release()
          const hashed = yield* disk.hash(t, piece)
          assert.deepStrictEqual(Buffer.from(hashed.sha1), Buffer.from(sha1(expected)))
        }
        yield* disk.flush(t)
        assert.strictEqual(disk.unsafeStats().jobs.write.completed, batch.length)
        assert.strictEqual(disk.unsafeStats().bytesWritten, 4 * BLOCK + Layout.pieceSize(smallLayout, 3))
      })
    )
  )

  it.live("refuses the bad writes of a batch by index, releasing their blocks, and keeps the rest", () =>
    withTorrent(({ disk, pool, t }) =>
      Effect.gen(function* () {
        const good = blocksOf(pool, 1)
        const unaligned = { piece: 0, offset: 100, block: pool.unsafeTryAcquire("write")! }
        const outOfRange = { piece: 9, offset: 0, block: pool.unsafeTryAcquire("write")! }
        const wrongLength = { piece: 0, offset: BLOCK, block: pool.unsafeTryAcquire("write")!, length: 100 }
        const released = pool.unsafeTryAcquire("write")!
        released.release()
        const invalid = { piece: 0, offset: 0, block: released }
        const batch = [unaligned, good[0]!, outOfRange, good[1]!, wrongLength, good[2]!, invalid, good[3]!]
        const written = yield* disk.writeMany(t, batch)
        assert.deepStrictEqual(
          written.failures.map((f) => [f.index, f.error.reason, f.error.operation, f.error.piece]),
          [
            [0, "Unaligned", "write", 0],
            [2, "OutOfRange", "write", 9],
            [4, "Unaligned", "write", 0],
            [6, "InvalidBlock", "write", 0]
          ]
        )
        for (const w of [unaligned, outOfRange, wrongLength]) assert.isTrue(w.block.released)
        // The good blocks are in the store buffer: the engine holds them until they are written.
        assert.strictEqual(pool.unsafeStats().inUse, 4)
        const hashed = yield* disk.hash(t, 1)
        assert.deepStrictEqual(Buffer.from(hashed.sha1), Buffer.from(sha1(pieceBytes(smallLayout, data, 1))))
        yield* disk.flush(t)
        assert.strictEqual(pool.unsafeStats().inUse, 0)
      })
    )
  )

  it.live("reports a pool past its high watermark, and to a removed torrent refuses every write", () =>
    withTorrent(
      ({ disk, pool, t }) =>
        Effect.gen(function* () {
          // 14 of 16 blocks in use is past the 0.75 high watermark.
          const batch = [
            ...blocksOf(pool, 0),
            ...blocksOf(pool, 1),
            ...blocksOf(pool, 2),
            ...blocksOf(pool, 3)
          ]
          assert.strictEqual(batch.length, 14)
          const written = yield* disk.writeMany(t, batch)
          assert.deepStrictEqual(written, { exceeded: true, failures: [] })
          yield* disk.flush(t)
          yield* disk.removeTorrent(t)
          const late = blocksOf(pool, 0)
          const refused = yield* disk.writeMany(t, late)
          assert.deepStrictEqual(
            refused.failures.map((f) => [f.index, f.error.reason]),
            late.map((_, i) => [i, "TorrentRemoved"])
          )
          for (const w of late) assert.isTrue(w.block.released)
        }),
      16
    )
  )

  it.live("unsafeWriteMany does the same on the caller's stack: in the store buffer when it returns", () =>
    withTorrent(({ disk, pool, t }) =>
      Effect.gen(function* () {
        const good = blocksOf(pool, 2)
        const outOfRange = { piece: 9, offset: 0, block: pool.unsafeTryAcquire("write")! }
        const written = disk.unsafeWriteMany(t, [...good, outOfRange])
        assert.deepStrictEqual(
          written.failures.map((f) => [f.index, f.error.reason]),
          [[good.length, "OutOfRange"]]
        )
        assert.isFalse(written.exceeded)
        assert.isTrue(outOfRange.block.released)
        // Queued before any fiber ran: the engine holds the good blocks already.
        assert.strictEqual(disk.unsafeStats().jobs.write.queued, good.length)
        assert.strictEqual(pool.unsafeStats().inUse, good.length)
        const expected = pieceBytes(smallLayout, data, 2)
        const hashed = yield* disk.hash(t, 2)
        assert.deepStrictEqual(Buffer.from(hashed.sha1), Buffer.from(sha1(expected)))
        yield* disk.flush(t)
        assert.strictEqual(disk.unsafeStats().jobs.write.completed, good.length)
        assert.strictEqual(pool.unsafeStats().inUse, 0)
      })
    )
  )
})
