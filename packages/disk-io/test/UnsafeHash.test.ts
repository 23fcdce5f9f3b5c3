import { assert, describe, it } from "@effect/vitest"
import { BufferPool } from "@ezio/pool"
import { Hasher } from "@ezio/storage"
import { Deferred, Effect, Exit, Fiber, Layer } from "effect"
import { DiskIo } from "../src/index.js"
import {
  type Controlled,
  controlled,
  ioError,
  pieceBytes,
  poolOptions,
  random,
  sha1,
  smallLayout
} from "./util.js"

const data = random(smallLayout.totalLength, 23)

/** The hasher answering `unsafeFinal` only once `answer()` is called (the rest as inline). */
const heldHasher = () => {
  const inline = Hasher.makeInline()
  const held: Array<() => void> = []
  const service: Hasher.HasherService = {
    ...inline,
    begin: (options) => {
      const job = inline.begin(options)
      return {
        ...job,
        unsafeFinal: (views, done) => {
          held.push(() => job.unsafeFinal(views, done))
        }
      }
    }
  }
  return { service, held, answer: () => held.splice(0).forEach((f) => f()) }
}

/** A fresh engine and one torrent of the small layout on held-back memory storage. */
const withTorrent = <A, E>(
  body: (torrent: {
    readonly disk: DiskIo.DiskIoService
    readonly pool: BufferPool.BufferPoolService
    readonly t: DiskIo.TorrentHandle
    readonly storage: Controlled
  }) => Effect.Effect<A, E, import("effect/Scope").Scope>,
  hasher: Hasher.HasherService = Hasher.makeInline()
) =>
  Effect.gen(function* () {
    const pool = yield* BufferPool.BufferPool
    const result = yield* Effect.scoped(
      Effect.gen(function* () {
        const disk = yield* DiskIo.make()
        const storage = yield* controlled(smallLayout)
        const t = yield* disk.addTorrent(storage)
        return yield* body({ disk, pool, t, storage })
      })
    )
    assert.strictEqual(pool.unsafeStats().inUse, 0, "every block back in the pool after the engine closed")
    return result
  }).pipe(
    Effect.provide(
      Layer.merge(Layer.orDie(BufferPool.layer(poolOptions(64))), Layer.succeed(Hasher.Hasher, hasher))
    )
  )

const writePiece = (
  disk: DiskIo.DiskIoService,
  pool: BufferPool.BufferPoolService,
  t: DiskIo.TorrentHandle,
  piece: number
) => {
  const bytes = pieceBytes(smallLayout, data, piece)
  const batch: Array<DiskIo.BlockWrite> = []
  for (let offset = 0; offset < bytes.length; offset += pool.blockSize) {
    const chunk = bytes.subarray(offset, Math.min(bytes.length, offset + pool.blockSize))
    const block = pool.unsafeTryAcquire("write")!
    block.bytes.set(chunk)
    batch.push(
      chunk.length === pool.blockSize
        ? { piece, offset, block }
        : { piece, offset, block, length: chunk.length }
    )
  }
  const written = disk.unsafeWriteMany(t, batch)
  assert.deepStrictEqual(written.failures, [])
}

/** `unsafeHash`'s answer, as an Effect. */
const unsafeHash = (
  disk: DiskIo.DiskIoService,
  t: DiskIo.TorrentHandle,
  piece: number,
  options: DiskIo.HashOptions = {}
) =>
  Effect.async<Exit.Exit<DiskIo.Hashed, DiskIo.DiskIoError>>((resume) =>
    disk.unsafeHash(t, piece, options, (exit) => resume(Effect.succeed(exit)))
  )

describe("DiskIo.unsafeHash", () => {
  it.live("hashes a piece whole in the store buffer in place, answering once its writes are on storage", () =>
    withTorrent(({ disk, pool, storage, t }) =>
      Effect.gen(function* () {
        const hold = yield* Deferred.make<void>()
        storage.hooks.beforeWrite = () => Deferred.await(hold)
        writePiece(disk, pool, t, 1)
        let answer: Exit.Exit<DiskIo.Hashed, DiskIo.DiskIoError> | undefined
        disk.unsafeHash(t, 1, { v2: true }, (exit) => {
          answer = exit
        })
        yield* Effect.sleep("20 millis")
        assert.strictEqual(answer, undefined, "no answer while the piece's write is held")
        assert.strictEqual(disk.unsafeStats().bytesHashed, pieceBytes(smallLayout, data, 1).length)
        yield* Deferred.succeed(hold, undefined)
        yield* Effect.sleep("20 millis")
        assert.ok(answer !== undefined && Exit.isSuccess(answer), "answered once written")
        const expected = pieceBytes(smallLayout, data, 1)
        assert.deepStrictEqual(Buffer.from(answer.value.sha1), Buffer.from(sha1(expected)))
        // The same answer as `hash` gives, block hashes included, read back from storage now.
        const again = yield* disk.hash(t, 1, { v2: true })
        assert.deepStrictEqual(answer.value, again)
        assert.strictEqual(storage.calls.reads, 1, "the in-place hash read nothing back; `hash` read once")
        const jobs = disk.unsafeStats().jobs.hash
        assert.deepStrictEqual(jobs, { queued: 0, running: 0, completed: 2, failed: 0 })
      })
    )
  )

  // A download's hasher may hash hot jobs on the calling thread (Hasher's `hotJobs`): only the
  // in-place hash of blocks this thread just wrote is hot, never a piece read back from storage.
  it.live("marks the in-place hash hot and a hash read back from storage not", () => {
    const inline = Hasher.makeInline()
    const hot: Array<boolean | undefined> = []
    const recording: Hasher.HasherService = {
      ...inline,
      begin: (options) => {
        hot.push(options?.hot)
        return inline.begin(options)
      }
    }
    return withTorrent(
      ({ disk, pool, t }) =>
        Effect.gen(function* () {
          writePiece(disk, pool, t, 1)
          assert.ok(Exit.isSuccess(yield* unsafeHash(disk, t, 1)))
          assert.deepStrictEqual(hot, [true], "in the store buffer: hot")
          yield* disk.flush(t)
          yield* disk.hash(t, 1)
          assert.deepStrictEqual(hot, [true, undefined], "read back: not hot")
        }),
      recording
    )
  })

  it.live("fails with the piece's write error", () =>
    withTorrent(({ disk, pool, storage, t }) =>
      Effect.gen(function* () {
        storage.hooks.beforeWrite = (piece) => Effect.fail(ioError("write", piece))
        writePiece(disk, pool, t, 2)
        const exit = yield* unsafeHash(disk, t, 2)
        assert.ok(Exit.isFailure(exit))
        const error = yield* Effect.flip(exit)
        assert.strictEqual(error.reason, "WriteFailed")
        assert.strictEqual(error.piece, 2)
        assert.deepStrictEqual(disk.unsafeStats().jobs.hash, {
          queued: 0,
          running: 0,
          completed: 0,
          failed: 1
        })
        yield* Effect.either(disk.clearPiece(t, 2))
      })
    )
  )

  it.live("falls back to `hash` for a piece not in the store buffer, and refuses what `hash` refuses", () =>
    withTorrent(({ disk, pool, storage, t }) =>
      Effect.gen(function* () {
        writePiece(disk, pool, t, 3)
        yield* disk.flush(t)
        const exit = yield* unsafeHash(disk, t, 3)
        assert.ok(Exit.isSuccess(exit))
        assert.deepStrictEqual(
          Buffer.from(exit.value.sha1),
          Buffer.from(sha1(pieceBytes(smallLayout, data, 3)))
        )
        assert.strictEqual(storage.calls.reads, 1, "read back from storage")
        const outOfRange = yield* Effect.flip(yield* unsafeHash(disk, t, 4))
        assert.strictEqual(outOfRange.reason, "OutOfRange")
        yield* disk.removeTorrent(t)
        const removed = yield* Effect.flip(yield* unsafeHash(disk, t, 0))
        assert.strictEqual(removed.reason, "TorrentRemoved")
      })
    )
  )

  it.live("closing the engine waits for a hash the hasher has not answered yet", () => {
    const hasher = heldHasher()
    let answer: Exit.Exit<DiskIo.Hashed, DiskIo.DiskIoError> | undefined
    return Effect.gen(function* () {
      const closed = yield* Deferred.make<void>()
      const fiber = yield* Effect.fork(
        Effect.ensuring(
          withTorrent(
            ({ disk, pool, t }) =>
              Effect.gen(function* () {
                writePiece(disk, pool, t, 0)
                disk.unsafeHash(t, 0, {}, (exit) => {
                  answer = exit
                })
                yield* disk.flush(t)
              }),
            hasher.service
          ),
          Deferred.succeed(closed, undefined)
        )
      )
      yield* Effect.sleep("30 millis")
      assert.strictEqual(yield* Deferred.isDone(closed), false, "the engine is still closing")
      assert.strictEqual(hasher.held.length, 1)
      hasher.answer()
      yield* Fiber.join(fiber)
      yield* Effect.sleep("1 millis")
      assert.ok(answer !== undefined && Exit.isSuccess(answer))
      assert.deepStrictEqual(
        Buffer.from(answer.value.sha1),
        Buffer.from(sha1(pieceBytes(smallLayout, data, 0)))
      )
    })
  })
})
