/**
 * `unsafeReadOwned`, the send path's read without a fiber: the same bytes and bookkeeping as
 * `readOwned` on real files, the store buffer's blocks copied from there, a wait for an io permit
 * in plain code, typed errors, and `false` (nothing done) whenever it would have to wait for pool
 * blocks or cannot do it.
 */
import * as NFS from "node:fs"
import * as NOS from "node:os"
import * as NPath from "node:path"
import { assert, describe, it } from "@effect/vitest"
import { BufferPool } from "@ezio/pool"
import { FileIo, Hasher, Layout, Storage } from "@ezio/storage"
import { Effect, Exit, Fiber } from "effect"
import { DiskIo } from "../src/index.js"
import { BLOCK, concat, controlled, hex, random } from "./util.js"

const tempDir = Effect.acquireRelease(
  Effect.sync(() => NFS.mkdtempSync(NPath.join(NOS.tmpdir(), "ezio-disk-io-unsafe-read-"))),
  (dir) => Effect.sync(() => NFS.rmSync(dir, { recursive: true, force: true }))
)

const layout = Layout.make({
  name: "unsafe-read",
  pieceLength: 8 * BLOCK,
  files: [
    { path: ["one.bin"], length: 20 * BLOCK },
    { path: ["two.bin"], length: 30 * BLOCK + 77 }
  ]
})

const data = random(layout.totalLength, 41)
const pieceData = (piece: number) =>
  data.subarray(piece * layout.pieceLength, piece * layout.pieceLength + Layout.pieceSize(layout, piece))

/** A FileIo whose writev calls wait until `release()`, after which they pass (blocks stay in the store buffer until then). */
const heldWrites = () => {
  const held: Array<() => void> = []
  let passing = false
  const fileIo: FileIo.FileIo = {
    ...FileIo.node,
    writev: (fd, buffers, position, callback) => {
      if (passing) return FileIo.node.writev(fd, buffers, position, callback)
      held.push(() => FileIo.node.writev(fd, buffers, position, callback))
    }
  }
  return {
    fileIo,
    release: () => {
      passing = true
      held.splice(0).forEach((f) => f())
    }
  }
}

const withDisk = <A, E>(
  fileIo: FileIo.FileIo,
  body: (
    disk: DiskIo.DiskIoService,
    pool: BufferPool.BufferPoolService,
    t: DiskIo.TorrentHandle
  ) => Effect.Effect<A, E, import("effect/Scope").Scope>,
  capacity = 256
) =>
  Effect.gen(function* () {
    const dir = yield* tempDir
    NFS.writeFileSync(NPath.join(dir, "one.bin"), data.subarray(0, 20 * BLOCK))
    NFS.writeFileSync(NPath.join(dir, "two.bin"), data.subarray(20 * BLOCK))
    const pool = yield* BufferPool.make({ blockSize: BLOCK, capacity: capacity * BLOCK })
    const result = yield* Effect.scoped(
      Effect.gen(function* () {
        const storage = yield* Storage.makeDirectory({ layout, root: dir, fileIo, durability: "none" })
        const disk = yield* DiskIo.make({ aioThreads: 2 }).pipe(
          Effect.provideService(BufferPool.BufferPool, pool),
          Effect.provideService(Hasher.Hasher, Hasher.makeInline())
        )
        const t = yield* disk.addTorrent(storage)
        return yield* body(disk, pool, t)
      })
    )
    assert.strictEqual(pool.unsafeStats().inUse, 0, "every block back after the engine closed")
    return result
  }).pipe(Effect.scoped)

/** Starts `unsafeReadOwned`; `started` says whether it did, `exit` awaits its answer. */
const start = (
  disk: DiskIo.DiskIoService,
  t: DiskIo.TorrentHandle,
  piece: number,
  offset: number,
  length: number
) =>
  Effect.gen(function* () {
    let answer: Exit.Exit<DiskIo.Read, DiskIoError> | undefined
    const waiters: Array<() => void> = []
    const started = disk.unsafeReadOwned(t, piece, offset, length, (exit) => {
      answer = exit
      waiters.splice(0).forEach((f) => f())
    })
    const answeredAtReturn = answer !== undefined
    const exit = Effect.async<Exit.Exit<DiskIo.Read, DiskIoError>>((resume) => {
      if (answer !== undefined) return resume(Effect.succeed(answer))
      waiters.push(() => resume(Effect.succeed(answer!)))
    })
    return { started, answeredAtReturn, exit }
  })

type DiskIoError = DiskIo.DiskIoError

describe("unsafeReadOwned", () => {
  it.live("reads what readOwned reads from files, any alignment, with the same counters", () =>
    withDisk(FileIo.node, (disk, pool, t) =>
      Effect.gen(function* () {
        const ranges: Array<[number, number, number]> = [
          [0, 0, 8 * BLOCK],
          [2, 100, 3 * BLOCK],
          [3, 7 * BLOCK, BLOCK],
          [layout.pieceCount - 1, 0, Layout.pieceSize(layout, layout.pieceCount - 1)]
        ]
        for (const [piece, offset, length] of ranges) {
          const before = yield* disk.stats
          const read = yield* start(disk, t, piece, offset, length)
          assert.isTrue(read.started)
          assert.isFalse(read.answeredAtReturn, "never answers on the caller's stack")
          const exit = yield* read.exit
          assert.isTrue(Exit.isSuccess(exit))
          const got = Exit.isSuccess(exit) ? exit.value : undefined
          assert.strictEqual(hex(concat(got!.views)), hex(pieceData(piece).subarray(offset, offset + length)))
          assert.strictEqual(got!.length, length)
          const after = yield* disk.stats
          assert.strictEqual(after.jobs.read.completed, before.jobs.read.completed + 1)
          assert.strictEqual(after.bytesRead, before.bytesRead + length)
          assert.strictEqual(after.jobs.read.running + after.jobs.read.queued, 0)
          // The caller owns the blocks.
          assert.strictEqual(pool.unsafeStats().inUse, got!.blocks.length)
          got!.release()
          assert.strictEqual(pool.unsafeStats().inUse, 0)
        }
      })
    )
  )

  it.live("copies blocks still in the store buffer from there, reading only the rest", () => {
    const held = heldWrites()
    return withDisk(held.fileIo, (disk, pool, t) =>
      Effect.gen(function* () {
        const fresh = random(2 * BLOCK, 42)
        for (let i = 0; i < 2; i++) {
          const block = pool.unsafeTryAcquire("write")!
          block.bytes.set(fresh.subarray(i * BLOCK, (i + 1) * BLOCK))
          const written = disk.unsafeWriteMany(t, [{ piece: 1, offset: i * BLOCK, block }])
          assert.strictEqual(written.failures.length, 0)
        }
        const before = yield* disk.stats
        // Blocks 0-1 of piece 1 from the store buffer, 2-3 from the file: what each holds now.
        const read = yield* start(disk, t, 1, 0, 4 * BLOCK)
        assert.isTrue(read.started)
        const exit = yield* read.exit
        assert.isTrue(Exit.isSuccess(exit))
        const got = Exit.isSuccess(exit) ? exit.value : undefined
        assert.strictEqual(
          hex(concat(got!.views)),
          hex(concat([fresh, pieceData(1).subarray(2 * BLOCK, 4 * BLOCK)]))
        )
        const after = yield* disk.stats
        assert.strictEqual(after.bytesReadFromStoreBuffer, before.bytesReadFromStoreBuffer + 2 * BLOCK)
        got!.release()
        // Wholly in the store buffer: no storage read at all, still answered after returning.
        const whole = yield* start(disk, t, 1, 0, 2 * BLOCK)
        assert.isTrue(whole.started)
        assert.isFalse(whole.answeredAtReturn)
        const wholeExit = yield* whole.exit
        assert.isTrue(Exit.isSuccess(wholeExit))
        if (Exit.isSuccess(wholeExit)) {
          assert.strictEqual(hex(concat(wholeExit.value.views)), hex(fresh))
          wholeExit.value.release()
        }
        held.release()
        yield* disk.flush(t)
      })
    )
  })

  it.live("waits in plain code for an io permit the writers hold, then reads", () => {
    const held = heldWrites()
    return withDisk(held.fileIo, (disk, pool, t) =>
      Effect.gen(function* () {
        // Two whole pieces written: both aio writers (aioThreads 2) hold a permit in a held writev.
        for (const piece of [0, 2])
          for (let i = 0; i < 8; i++) {
            const block = pool.unsafeTryAcquire("write")!
            block.bytes.fill(piece + 1)
            assert.strictEqual(
              disk.unsafeWriteMany(t, [{ piece, offset: i * BLOCK, block }]).failures.length,
              0
            )
          }
        while ((yield* disk.stats).jobs.write.running < 2) yield* Effect.sleep("5 millis")
        const read = yield* start(disk, t, 4, BLOCK, 3 * BLOCK)
        assert.isTrue(read.started, "it queues for the permit instead of leaving the read to a fiber")
        yield* Effect.sleep("50 millis")
        const waiting = yield* disk.stats
        assert.strictEqual(waiting.jobs.read.queued, 1, "queued while no permit is free")
        assert.strictEqual(waiting.jobs.read.running, 0)
        held.release()
        const exit = yield* read.exit
        assert.isTrue(Exit.isSuccess(exit))
        if (Exit.isSuccess(exit)) {
          assert.strictEqual(hex(concat(exit.value.views)), hex(pieceData(4).subarray(BLOCK, 4 * BLOCK)))
          exit.value.release()
        }
        const after = yield* disk.stats
        assert.strictEqual(after.jobs.read.completed, waiting.jobs.read.completed + 1)
        assert.strictEqual(after.jobs.read.queued, 0)
        yield* disk.flush(t)
      })
    )
  })

  it.live("a failed storage read answers with readOwned's typed error and gives the blocks back", () =>
    withDisk(
      FileIo.faulty((call, n) => (call === "readv" && n === 0 ? "EIO" : undefined)),
      (disk, pool, t) =>
        Effect.gen(function* () {
          const read = yield* start(disk, t, 2, 0, 4 * BLOCK)
          assert.isTrue(read.started)
          const exit = yield* read.exit
          assert.isTrue(Exit.isFailure(exit))
          const error = Exit.isFailure(exit)
            ? (exit.cause as { _tag: string; error: DiskIoError })
            : undefined
          assert.strictEqual(error?._tag, "Fail")
          assert.strictEqual(error!.error.reason, "Storage")
          assert.strictEqual(error!.error.operation, "read")
          assert.strictEqual(error!.error.piece, 2)
          assert.strictEqual((error!.error.cause as { reason: string }).reason, "Io")
          assert.strictEqual(pool.unsafeStats().inUse, 0)
          const stats = yield* disk.stats
          assert.strictEqual(stats.jobs.read.failed, 1)
          // The next read of it succeeds.
          const again = yield* start(disk, t, 2, 0, 4 * BLOCK)
          const ok = yield* again.exit
          assert.isTrue(Exit.isSuccess(ok))
          if (Exit.isSuccess(ok)) ok.value.release()
        })
    )
  )

  it.live("does nothing and says so when it would wait or readOwned refuses the request", () =>
    withDisk(
      FileIo.node,
      (disk, pool, t) =>
        Effect.gen(function* () {
          const none = () => assert.fail("onExit called for a read that did not start")
          assert.isFalse(disk.unsafeReadOwned(t, layout.pieceCount, 0, BLOCK, none), "past the last piece")
          assert.isFalse(disk.unsafeReadOwned(t, 0, 7 * BLOCK, 2 * BLOCK, none), "past the piece's end")
          assert.isFalse(disk.unsafeReadOwned(t, 0, 0, 0, none), "nothing to read")
          // The pool's blocks all taken: it would wait.
          const taken: Array<BufferPool.Block> = []
          for (let b = pool.unsafeTryAcquire("write"); b !== undefined; b = pool.unsafeTryAcquire("write"))
            taken.push(b)
          assert.isFalse(disk.unsafeReadOwned(t, 0, 0, BLOCK, none), "no free block")
          assert.strictEqual(pool.unsafeStats().inUse, taken.length)
          for (const b of taken) b.release()
          // readOwned still answers each with its error or waits.
          const error = yield* Effect.flip(disk.readOwned(t, layout.pieceCount, 0, BLOCK))
          assert.strictEqual(error.reason, "OutOfRange")
        }),
      4
    )
  )

  it.live("a storage without a callback read (memory) is left to readOwned", () =>
    Effect.gen(function* () {
      const pool = yield* BufferPool.make({ blockSize: BLOCK, capacity: 64 * BLOCK })
      yield* Effect.scoped(
        Effect.gen(function* () {
          const disk = yield* DiskIo.make().pipe(
            Effect.provideService(BufferPool.BufferPool, pool),
            Effect.provideService(Hasher.Hasher, Hasher.makeInline())
          )
          const storage = yield* controlled(layout)
          const t = yield* disk.addTorrent(storage)
          assert.isFalse(disk.unsafeReadOwned(t, 0, 0, BLOCK, () => assert.fail("answered")))
          assert.strictEqual(storage.calls.reads, 0)
          assert.strictEqual(pool.unsafeStats().inUse, 0)
        })
      )
    }).pipe(Effect.scoped)
  )

  it.live("closing the engine waits for a read in flight", () => {
    const held: Array<() => void> = []
    const fileIo: FileIo.FileIo = {
      ...FileIo.node,
      readv: (fd, buffers, position, callback) => {
        held.push(() => FileIo.node.readv(fd, buffers, position, callback))
      }
    }
    return Effect.gen(function* () {
      const dir = yield* tempDir
      NFS.writeFileSync(NPath.join(dir, "one.bin"), data.subarray(0, 20 * BLOCK))
      NFS.writeFileSync(NPath.join(dir, "two.bin"), data.subarray(20 * BLOCK))
      const pool = yield* BufferPool.make({ blockSize: BLOCK, capacity: 64 * BLOCK })
      const got: { answer?: Exit.Exit<DiskIo.Read, DiskIoError> } = {}
      let answered = ""
      let closed = false
      const engine = yield* Effect.fork(
        Effect.scoped(
          Effect.gen(function* () {
            const storage = yield* Storage.makeDirectory({ layout, root: dir, fileIo, durability: "none" })
            const disk = yield* DiskIo.make().pipe(
              Effect.provideService(BufferPool.BufferPool, pool),
              Effect.provideService(Hasher.Hasher, Hasher.makeInline())
            )
            const t = yield* disk.addTorrent(storage)
            // Open the file first: the callback read needs an open handle.
            const warm = yield* disk.readOwned(t, 0, 0, BLOCK).pipe(Effect.fork)
            while (held.length === 0) yield* Effect.sleep("5 millis")
            held.splice(0).forEach((f) => f())
            ;(yield* Fiber.join(warm)).release()
            assert.isTrue(
              disk.unsafeReadOwned(t, 0, 0, 2 * BLOCK, (exit) => {
                got.answer = exit
                if (Exit.isSuccess(exit)) answered = hex(concat(exit.value.views))
              })
            )
          })
        ).pipe(Effect.ensuring(Effect.sync(() => (closed = true))))
      )
      while (held.length === 0) yield* Effect.sleep("5 millis")
      yield* Effect.sleep("50 millis")
      assert.isFalse(closed, "the engine is still closing while its read is in flight")
      assert.isUndefined(got.answer)
      held.splice(0).forEach((f) => f())
      yield* Fiber.join(engine)
      assert.isTrue(closed)
      const answer = got.answer as Exit.Exit<DiskIo.Read, DiskIoError> | undefined
      assert.isTrue(answer !== undefined && Exit.isSuccess(answer))
      assert.strictEqual(answered, hex(pieceData(0).subarray(0, 2 * BLOCK)))
      // The engine's scope gave its blocks back as it closed; releasing again is harmless.
      if (answer !== undefined && Exit.isSuccess(answer)) answer.value.release()
      assert.strictEqual(pool.unsafeStats().inUse, 0)
    }).pipe(Effect.scoped)
  })
})
