import { assert, describe, it } from "@effect/vitest"
import { BufferPool } from "@ezio/pool"
import { Hasher, Layout } from "@ezio/storage"
import { ConfigProvider, Deferred, Effect, Exit, Fiber, Layer, Metric, TestClock } from "effect"
import { DiskIo } from "../src/index.js"
import {
  BLOCK,
  concat,
  type Controlled,
  controlled,
  type Hooks,
  hex,
  ioError,
  pieceBytes,
  poolOptions,
  random,
  sha1,
  sha256,
  smallLayout,
  writeBlocks
} from "./util.js"

const base = Layer.merge(Layer.orDie(BufferPool.layer(poolOptions(64))), Hasher.layerInline)

/** Runs `body` with a fresh engine, then checks that closing it gave every block back. */
const withEngine = <A, E>(
  body: (
    disk: DiskIo.DiskIoService,
    pool: BufferPool.BufferPoolService
  ) => Effect.Effect<A, E, import("effect/Scope").Scope>,
  options: DiskIo.Options = {}
) =>
  Effect.gen(function* () {
    const pool = yield* BufferPool.BufferPool
    const result = yield* Effect.scoped(Effect.flatMap(DiskIo.make(options), (disk) => body(disk, pool)))
    assert.strictEqual(pool.unsafeStats().inUse, 0, "every block back in the pool after the engine closed")
    return result
  }).pipe(Effect.provide(base))

/** A fresh engine and one torrent of `layout` on a controlled memory storage (hooks go in `storage.hooks`). */
const withTorrent = <A, E>(
  layout: Layout.Layout,
  body: (torrent: {
    readonly disk: DiskIo.DiskIoService
    readonly pool: BufferPool.BufferPoolService
    readonly storage: Controlled
    readonly t: DiskIo.TorrentHandle
  }) => Effect.Effect<A, E, import("effect/Scope").Scope>,
  options: DiskIo.Options = {}
) =>
  withEngine(
    (disk, pool) =>
      Effect.gen(function* () {
        const storage = yield* controlled(layout)
        const t = yield* disk.addTorrent(storage)
        return yield* body({ disk, pool, storage, t })
      }),
    options
  )

/** Sets storage hooks once the test has what they wait on (a Deferred, say). */
const hook = (storage: Controlled, hooks: Hooks) => void Object.assign(storage.hooks, hooks)

const data = random(smallLayout.totalLength, 7)

/** Yields until `condition` holds (bounded). */
const eventually = (condition: () => boolean, what: string) =>
  Effect.gen(function* () {
    for (let i = 0; i < 10_000; i++) {
      if (condition()) return
      yield* Effect.yieldNow()
    }
    return yield* Effect.dieMessage(`never happened: ${what}`)
  })

describe("DiskIo", () => {
  it.live("reads what storage holds, at any offset and length", () =>
    withTorrent(smallLayout, ({ disk, storage, t }) =>
      Effect.gen(function* () {
        storage.bytes.set(data)
        for (const [piece, offset, length] of [
          [0, 0, 4 * BLOCK],
          [0, 100, 700],
          [1, 511, 2],
          [3, 0, Layout.pieceSize(smallLayout, 3)],
          [3, 300, Layout.pieceSize(smallLayout, 3) - 300]
        ] as const) {
          const read = yield* disk.read(t, piece, offset, length)
          assert.strictEqual(read.length, length)
          assert.strictEqual(read.blocks.length, Math.ceil(length / BLOCK))
          const start = piece * smallLayout.pieceLength + offset
          assert.strictEqual(hex(concat(read.views)), hex(data.subarray(start, start + length)))
          read.release()
        }
        // One vectored storage call per read (nothing pending).
        assert.strictEqual(storage.calls.reads, 5)
      })
    )
  )

  it.live("a read after a write sees it before it reaches storage (store buffer)", () =>
    withTorrent(smallLayout, ({ disk, pool, storage, t }) =>
      Effect.gen(function* () {
        const hold = yield* Deferred.make<void>()
        hook(storage, { beforeWrite: () => Deferred.await(hold) })
        storage.bytes.set(data)
        const fresh = random(2 * BLOCK, 99)
        // Blocks 1 and 2 of piece 1 are rewritten; storage will not see them until released.
        yield* writeBlocks(disk, pool, t, 1, BLOCK, fresh)
        const expected = pieceBytes(smallLayout, data, 1).slice()
        expected.set(fresh, BLOCK)
        assert.notStrictEqual(
          hex(storage.bytes.subarray(4 * BLOCK + BLOCK, 4 * BLOCK + 2 * BLOCK)),
          hex(fresh.subarray(0, BLOCK))
        )
        for (const [offset, length] of [
          [0, 4 * BLOCK],
          [BLOCK, 2 * BLOCK],
          [BLOCK + 10, 100],
          [300, BLOCK],
          [2 * BLOCK + 400, BLOCK + 112],
          [0, BLOCK]
        ] as const) {
          const read = yield* disk.readOwned(t, 1, offset, length)
          assert.strictEqual(
            hex(concat(read.views)),
            hex(expected.subarray(offset, offset + length)),
            `${offset}+${length}`
          )
          read.release()
        }
        assert.strictEqual(disk.unsafeStats().storeBufferBlocks, 2)
        yield* Deferred.succeed(hold, undefined)
        yield* disk.flush(t)
        assert.strictEqual(disk.unsafeStats().storeBufferBlocks, 0)
        assert.strictEqual(hex(storage.bytes.subarray(4 * BLOCK, 8 * BLOCK)), hex(expected))
        // Adjacent blocks went down in one vectored write.
        assert.strictEqual(storage.calls.writes, 1)
        assert.strictEqual(storage.calls.writeBuffers, 2)
      })
    )
  )

  it.live("a hash waits for the piece's writes, and gives SHA-1 and v2 block hashes", () =>
    withTorrent(smallLayout, ({ disk, pool, storage, t }) =>
      Effect.gen(function* () {
        const hold = yield* Deferred.make<void>()
        hook(storage, { beforeWrite: () => Deferred.await(hold) })
        const piece = pieceBytes(smallLayout, data, 3)
        yield* writeBlocks(disk, pool, t, 3, 0, piece)
        const hashing = yield* Effect.fork(disk.hash(t, 3, { v2: true }))
        // The hash is issued and the piece's write is held on storage: the hash must wait for it.
        yield* eventually(() => {
          const { hash, write } = disk.unsafeStats().jobs
          return hash.queued + hash.running === 1 && write.running > 0
        }, "hash issued while the write is held")
        assert.isNull(yield* Fiber.poll(hashing).pipe(Effect.map((o) => (o._tag === "Some" ? o : null))))
        yield* Deferred.succeed(hold, undefined)
        const hashed = yield* Fiber.join(hashing)
        assert.strictEqual(hex(hashed.sha1), hex(sha1(piece)))
        const leaves = []
        for (let at = 0; at < piece.length; at += 16 * 1024)
          leaves.push(hex(sha256(piece.subarray(at, at + 16 * 1024))))
        assert.deepStrictEqual(hashed.blockHashes?.map(hex), leaves)
        assert.isUndefined((yield* disk.hash(t, 3)).blockHashes)
      })
    )
  )

  it.live("jobs on different pieces run in parallel; a piece's hash waits for its own writes", () =>
    withTorrent(smallLayout, ({ disk, pool, storage, t }) =>
      Effect.gen(function* () {
        const hold = yield* Deferred.make<void>()
        hook(storage, {
          beforeWrite: (piece) => (piece === 0 ? Deferred.await(hold) : Effect.void)
        })
        yield* writeBlocks(disk, pool, t, 0, 0, pieceBytes(smallLayout, data, 0))
        yield* writeBlocks(disk, pool, t, 1, 0, pieceBytes(smallLayout, data, 1))
        const hash0 = yield* Effect.fork(disk.hash(t, 0))
        // Piece 1's writes and hash complete while piece 0's write is stuck.
        const hashed1 = yield* disk.hash(t, 1)
        assert.strictEqual(hex(hashed1.sha1), hex(sha1(pieceBytes(smallLayout, data, 1))))
        const read2 = yield* disk.readOwned(t, 2, 0, BLOCK)
        read2.release()
        assert.isTrue((yield* Fiber.poll(hash0))._tag === "None")
        yield* Deferred.succeed(hold, undefined)
        assert.strictEqual(hex((yield* Fiber.join(hash0)).sha1), hex(sha1(pieceBytes(smallLayout, data, 0))))
      })
    )
  )

  it.live("a failed write fails the piece's hash and the flush, releases its blocks, until clearPiece", () =>
    withTorrent(smallLayout, ({ disk, pool, storage, t }) =>
      Effect.gen(function* () {
        let fail = true
        hook(storage, {
          beforeWrite: (piece) => (fail && piece === 2 ? Effect.fail(ioError("write", piece)) : Effect.void)
        })
        const piece = pieceBytes(smallLayout, data, 2)
        yield* writeBlocks(disk, pool, t, 2, 0, piece)
        yield* writeBlocks(disk, pool, t, 1, 0, pieceBytes(smallLayout, data, 1))
        const error = yield* Effect.flip(disk.hash(t, 2))
        assert.strictEqual(error._tag, "DiskIoError")
        assert.strictEqual(error.reason, "WriteFailed")
        assert.strictEqual(error.piece, 2)
        assert.strictEqual((error.cause as { _tag: string })._tag, "StorageError")
        assert.match(error.message, /piece 2/)
        // Other pieces are fine.
        assert.strictEqual(hex((yield* disk.hash(t, 1)).sha1), hex(sha1(pieceBytes(smallLayout, data, 1))))
        const flushError = yield* Effect.flip(disk.flush(t))
        assert.strictEqual(flushError.reason, "WriteFailed")
        assert.strictEqual(pool.unsafeStats().inUse, 0, "failed writes gave their blocks back")
        assert.strictEqual(disk.unsafeStats().writeErrors, 1)
        // Still failing until cleared; after clearPiece and a good re-download the piece verifies.
        assert.strictEqual((yield* Effect.flip(disk.hash(t, 2))).reason, "WriteFailed")
        yield* disk.clearPiece(t, 2)
        fail = false
        yield* writeBlocks(disk, pool, t, 2, 0, piece)
        assert.strictEqual(hex((yield* disk.hash(t, 2)).sha1), hex(sha1(piece)))
        yield* disk.flush(t)
      })
    )
  )

  it.live("clearPiece drops pending writes that have not started", () =>
    withTorrent(
      smallLayout,
      ({ disk, pool, storage, t }) =>
        Effect.gen(function* () {
          const hold = yield* Deferred.make<void>()
          hook(storage, {
            beforeWrite: (piece) => (piece === 0 ? Deferred.await(hold) : Effect.void)
          })
          // Block 0 starts writing (held); blocks 1..3 queue behind it.
          yield* writeBlocks(disk, pool, t, 0, 0, pieceBytes(smallLayout, data, 0).subarray(0, BLOCK))
          yield* eventually(() => disk.unsafeStats().jobs.write.running === 1, "write started")
          yield* writeBlocks(disk, pool, t, 0, BLOCK, pieceBytes(smallLayout, data, 0).subarray(BLOCK))
          assert.strictEqual(disk.unsafeStats().storeBufferBlocks, 4)
          const clearing = yield* Effect.fork(disk.clearPiece(t, 0))
          yield* eventually(() => disk.unsafeStats().storeBufferBlocks === 1, "queued dropped")
          assert.strictEqual(pool.unsafeStats().inUse, 1)
          yield* Deferred.succeed(hold, undefined)
          yield* Fiber.join(clearing)
          assert.strictEqual(pool.unsafeStats().inUse, 0)
          // Only the first block reached storage.
          assert.strictEqual(hex(storage.bytes.subarray(0, BLOCK)), hex(data.subarray(0, BLOCK)))
          assert.strictEqual(hex(storage.bytes.subarray(BLOCK, 4 * BLOCK)), hex(new Uint8Array(3 * BLOCK)))
        }),
      // Every write goes at once, so block 0 is in storage's hands before the others arrive.
      { writeCoalesceBlocks: 1 }
    )
  )

  it.live("a failing read is a typed error and gives its blocks back", () =>
    withTorrent(smallLayout, ({ disk, pool, storage, t }) =>
      Effect.gen(function* () {
        hook(storage, {
          beforeRead: (piece) => (piece === 1 ? Effect.fail(ioError("read", piece)) : Effect.void)
        })
        const error = yield* Effect.flip(disk.readOwned(t, 1, 0, 3 * BLOCK))
        assert.strictEqual(error.reason, "Storage")
        assert.strictEqual(error.operation, "read")
        assert.strictEqual(error.piece, 1)
        assert.strictEqual(pool.unsafeStats().inUse, 0)
        const hashError = yield* Effect.flip(disk.hash(t, 1))
        assert.strictEqual(hashError.reason, "Storage")
        assert.strictEqual(pool.unsafeStats().inUse, 0)
        assert.strictEqual(disk.unsafeStats().jobs.read.failed, 1)
        assert.strictEqual(disk.unsafeStats().jobs.hash.failed, 1)
      })
    )
  )

  it.live("refuses bad requests with typed errors, releasing a refused write's block", () =>
    withTorrent(smallLayout, ({ disk, pool, t }) =>
      Effect.gen(function* () {
        const reasons: Array<string> = []
        const push = (e: DiskIo.DiskIoError) => Effect.sync(() => reasons.push(e.reason))
        yield* disk.readOwned(t, 4, 0, 1).pipe(Effect.flip, Effect.flatMap(push))
        yield* disk.readOwned(t, 0, 2000, 100).pipe(Effect.flip, Effect.flatMap(push))
        yield* disk
          .readOwned(t, 3, 0, Layout.pieceSize(smallLayout, 3) + 1)
          .pipe(Effect.flip, Effect.flatMap(push))
        yield* disk.hash(t, -1).pipe(Effect.flip, Effect.flatMap(push))
        for (const [piece, offset, length] of [
          [0, 100, undefined],
          [0, BLOCK, 100],
          [9, 0, undefined],
          [3, 4 * BLOCK, undefined]
        ] as const) {
          const block = pool.unsafeTryAcquire("write")!
          yield* disk.write(t, piece, offset, block, length).pipe(Effect.flip, Effect.flatMap(push))
          assert.isTrue(block.released)
        }
        const released = pool.unsafeTryAcquire("write")!
        released.release()
        yield* disk.write(t, 0, 0, released).pipe(Effect.flip, Effect.flatMap(push))
        assert.deepStrictEqual(reasons, [
          "OutOfRange",
          "OutOfRange",
          "OutOfRange",
          "OutOfRange",
          "Unaligned",
          "Unaligned",
          "OutOfRange",
          "OutOfRange",
          "InvalidBlock"
        ])
        // The short last block of the torrent is written with its own length.
        const last = Layout.pieceSize(smallLayout, 3)
        const lastOffset = Math.floor((last - 1) / BLOCK) * BLOCK
        const block = pool.unsafeTryAcquire("write")!
        block.bytes.fill(9)
        yield* disk.write(t, 3, lastOffset, block, last - lastOffset)
        yield* disk.flush(t)
        assert.strictEqual(pool.unsafeStats().inUse, 0)
      })
    )
  )

  it.live("removeTorrent drains pending writes, releases files, and refuses later jobs", () =>
    withTorrent(smallLayout, ({ disk, pool, storage, t }) =>
      Effect.gen(function* () {
        const hold = yield* Deferred.make<void>()
        hook(storage, { beforeWrite: () => Deferred.await(hold) })
        yield* writeBlocks(disk, pool, t, 0, 0, pieceBytes(smallLayout, data, 0))
        const removing = yield* Effect.fork(disk.removeTorrent(t))
        yield* Effect.sleep("10 millis")
        const refused = yield* Effect.flip(disk.hash(t, 0))
        assert.strictEqual(refused.reason, "TorrentRemoved")
        const block = pool.unsafeTryAcquire("write")!
        assert.strictEqual((yield* Effect.flip(disk.write(t, 1, 0, block))).reason, "TorrentRemoved")
        assert.isTrue(block.released)
        assert.isTrue((yield* Fiber.poll(removing))._tag === "None")
        yield* Deferred.succeed(hold, undefined)
        yield* Fiber.join(removing)
        assert.strictEqual(hex(storage.bytes.subarray(0, 4 * BLOCK)), hex(pieceBytes(smallLayout, data, 0)))
        assert.strictEqual(storage.calls.releases, 1)
        assert.strictEqual(disk.unsafeStats().torrents, 0)
      })
    )
  )

  it.live("stopTorrent flushes and releases files; closing the engine drains writes", () =>
    Effect.gen(function* () {
      const storage = yield* controlled(smallLayout, {
        beforeWrite: () => Effect.sleep("5 millis")
      })
      yield* withEngine((disk, pool) =>
        Effect.gen(function* () {
          const t = yield* disk.addTorrent(storage)
          yield* writeBlocks(disk, pool, t, 0, 0, pieceBytes(smallLayout, data, 0))
          yield* disk.stopTorrent(t)
          assert.strictEqual(storage.calls.releases, 1)
          assert.strictEqual(disk.unsafeStats().storeBufferBlocks, 0)
          yield* writeBlocks(disk, pool, t, 2, 0, pieceBytes(smallLayout, data, 2))
          // The engine closes with piece 2 pending: it must still reach storage.
        })
      )
      assert.strictEqual(
        hex(storage.bytes.subarray(8 * BLOCK, 12 * BLOCK)),
        hex(pieceBytes(smallLayout, data, 2))
      )
    })
  )

  it.live("interrupting a job gives its blocks back", () =>
    withTorrent(
      smallLayout,
      ({ disk, pool, storage, t }) =>
        Effect.gen(function* () {
          const readHold = yield* Deferred.make<void>()
          const writeHold = yield* Deferred.make<void>()
          hook(storage, {
            beforeRead: () => Deferred.await(readHold),
            beforeWrite: () => Deferred.await(writeHold)
          })
          // A read stuck in storage (its I/O is uninterruptible: the blocks come back once it returns).
          const reading = yield* Effect.fork(disk.readOwned(t, 0, 0, 2 * BLOCK))
          yield* eventually(() => disk.unsafeStats().jobs.read.running === 1, "read running")
          // A hash waiting for a held write.
          yield* writeBlocks(disk, pool, t, 1, 0, pieceBytes(smallLayout, data, 1).subarray(0, BLOCK))
          const hashing = yield* Effect.fork(disk.hash(t, 1))
          // A scoped read waiting for the io permits (aioThreads = 2: the read and the write hold them).
          const queuedRead = yield* Effect.fork(Effect.scoped(disk.read(t, 2, 0, BLOCK)))
          yield* eventually(() => disk.unsafeStats().jobs.read.queued === 1, "read queued")
          yield* Effect.sleep("5 millis")
          yield* Fiber.interrupt(hashing)
          yield* Fiber.interrupt(queuedRead)
          const interruptRead = yield* Effect.fork(Fiber.interrupt(reading))
          yield* Deferred.succeed(readHold, undefined)
          yield* Fiber.join(interruptRead)
          assert.isTrue(Exit.isInterrupted(yield* Fiber.await(reading)))
          // Only the pending write's block is still out.
          assert.strictEqual(pool.unsafeStats().inUse, 1)
          yield* Deferred.succeed(writeHold, undefined)
          yield* disk.flush(t)
          assert.strictEqual(pool.unsafeStats().inUse, 0)
          const stats = disk.unsafeStats()
          assert.strictEqual(stats.jobs.read.queued + stats.jobs.read.running, 0)
          assert.strictEqual(stats.jobs.hash.queued + stats.jobs.hash.running, 0)
        }),
      // Every write goes at once, so the write holds an io permit while the hash waits.
      { aioThreads: 2, writeCoalesceBlocks: 1 }
    )
  )

  it.live(
    "a read waits for blocks at the pool's hard limit instead of failing; interruption leaves the queue",
    () =>
      withTorrent(smallLayout, ({ disk, pool, t }) =>
        Effect.gen(function* () {
          const all = yield* Effect.scoped(
            Effect.gen(function* () {
              const held = yield* pool.acquireMany(62, "read")
              const waiting = yield* Effect.fork(disk.readOwned(t, 0, 0, 4 * BLOCK))
              const interrupted = yield* Effect.fork(disk.readOwned(t, 1, 0, 4 * BLOCK))
              yield* eventually(() => pool.unsafeStats().waiting === 2, "reads wait")
              yield* Fiber.interrupt(interrupted)
              assert.strictEqual(pool.unsafeStats().waiting, 1)
              for (const b of held.value.slice(0, 10)) b.release()
              return yield* Fiber.join(waiting)
            })
          )
          assert.strictEqual(all.length, 4 * BLOCK)
          all.release()
          assert.strictEqual(pool.unsafeStats().inUse, 0)
        })
      )
  )

  it.live("metrics count jobs, bytes, the store buffer and pool use", () =>
    withTorrent(
      smallLayout,
      ({ disk, pool, t }) =>
        Effect.gen(function* () {
          yield* writeBlocks(disk, pool, t, 0, 0, pieceBytes(smallLayout, data, 0))
          yield* disk.hash(t, 0)
          const read = yield* disk.readOwned(t, 0, 10, 1000)
          read.release()
          const stats = yield* disk.stats
          assert.strictEqual(stats.bytesWritten, 4 * BLOCK)
          assert.strictEqual(stats.bytesHashed, 4 * BLOCK)
          assert.strictEqual(stats.bytesRead, 1000)
          assert.strictEqual(stats.jobs.write.completed, 4)
          assert.strictEqual(stats.jobs.hash.completed, 1)
          assert.strictEqual(stats.jobs.read.completed, 1)
          const tagged = <M extends Metric.Metric<any, any, any>>(m: M, kind?: string): M => {
            const e = Metric.tagged(m, "engine", "metrics-test") as M
            return kind === undefined ? e : (Metric.tagged(e, "kind", kind) as M)
          }
          const written = yield* Metric.value(tagged(DiskIo.metrics.bytesWritten))
          assert.strictEqual(written.count, 4 * BLOCK)
          const hashJobs = yield* Metric.value(tagged(DiskIo.metrics.completed, "hash"))
          assert.strictEqual(hashJobs.count, 1)
          const store = yield* Metric.value(tagged(DiskIo.metrics.storeBuffer))
          const inUse = yield* Metric.value(tagged(DiskIo.metrics.poolInUse))
          assert.strictEqual(inUse.value, 0)
          assert.strictEqual(store.value, 0)
        }),
      { name: "metrics-test" }
    )
  )

  describe("hashing a piece still whole in the store buffer", () => {
    it.live("reads nothing back, and answers only once the piece's writes are on storage", () =>
      withTorrent(smallLayout, ({ disk, pool, storage, t }) =>
        Effect.gen(function* () {
          const hold = yield* Deferred.make<void>()
          hook(storage, { beforeWrite: () => Deferred.await(hold) })
          const piece = pieceBytes(smallLayout, data, 2)
          yield* writeBlocks(disk, pool, t, 2, 0, piece)
          const hashing = yield* Effect.fork(disk.hash(t, 2))
          for (let i = 0; i < 200; i++) yield* Effect.yieldNow()
          assert.isNull(hashing.unsafePoll(), "the writes are held: no answer yet")
          yield* Deferred.succeed(hold, undefined)
          const hashed = yield* Fiber.join(hashing)
          assert.strictEqual(hex(hashed.sha1), hex(sha1(piece)))
          assert.strictEqual(storage.calls.reads, 0, "hashed in place, not read back")
          assert.strictEqual(hex(storage.bytes.subarray(8 * BLOCK, 12 * BLOCK)), hex(piece))
        })
      )
    )

    it.live("a failed write of the piece fails its hash, and no block is left out of the pool", () =>
      withTorrent(smallLayout, ({ disk, pool, storage, t }) =>
        Effect.gen(function* () {
          hook(storage, {
            beforeWrite: (piece) => Effect.fail(ioError("write", piece))
          })
          yield* writeBlocks(disk, pool, t, 1, 0, pieceBytes(smallLayout, data, 1))
          const error = yield* Effect.flip(disk.hash(t, 1))
          assert.strictEqual(error.reason, "WriteFailed")
          assert.strictEqual(storage.calls.reads, 0)
          yield* disk.clearPiece(t, 1)
        })
      )
    )
  })

  describe("options", () => {
    const invalid = (options: DiskIo.Options, option: string) =>
      it.effect(`refuses ${JSON.stringify(options)} naming ${option}`, () =>
        Effect.gen(function* () {
          const error = yield* Effect.flip(Effect.scoped(DiskIo.make(options)))
          assert.strictEqual(error._tag, "InvalidDiskIoOptions")
          assert.strictEqual(error.option, option)
          assert.include(error.message, option)
        }).pipe(Effect.provide(base))
      )
    invalid({ aioThreads: 0 }, "aioThreads")
    invalid({ aioThreads: 2.5 }, "aioThreads")
    invalid({ hashThreads: -1 }, "hashThreads")
    invalid({ hashChunkBlocks: 0 }, "hashChunkBlocks")
    invalid({ maxWriteBlocks: Number.NaN }, "maxWriteBlocks")
    invalid({ writeCoalesceBlocks: 0 }, "writeCoalesceBlocks")
    invalid({ writeDelay: 0 }, "writeDelay")
    invalid({ maxQueuedBytes: 0 }, "maxQueuedBytes")
    invalid({ maxQueuedBytes: 1.5 }, "maxQueuedBytes")
    invalid({ name: "" }, "name")

    it.effect("layerConfig reads the options from Config, nested under diskIo", () =>
      Effect.gen(function* () {
        const disk = yield* DiskIo.DiskIo
        const stats = disk.unsafeStats()
        assert.strictEqual(stats.name, "from-config")
        assert.strictEqual(stats.aioThreads, 3)
        assert.strictEqual(stats.hashThreads, 2)
      }).pipe(
        Effect.provide(DiskIo.layerConfig().pipe(Layer.provide(base))),
        Effect.withConfigProvider(
          ConfigProvider.fromMap(
            new Map([
              ["diskIo.name", "from-config"],
              ["diskIo.aioThreads", "3"],
              ["diskIo.hashThreads", "2"],
              ["diskIo.writeDelay", "50 millis"]
            ])
          )
        )
      )
    )

    it.effect("layerConfig refuses a value out of range with InvalidDiskIoOptions", () =>
      Effect.gen(function* () {
        const error = yield* Effect.flip(
          Layer.build(DiskIo.layerConfig().pipe(Layer.provide(base))).pipe(Effect.scoped)
        )
        assert.strictEqual(error._tag, "InvalidDiskIoOptions")
      }).pipe(Effect.withConfigProvider(ConfigProvider.fromMap(new Map([["diskIo.aioThreads", "0"]]))))
    )

    it.effect("addTorrent on a closed engine fails as addTorrent", () =>
      Effect.gen(function* () {
        const disk = yield* Effect.scoped(DiskIo.make())
        const storage = yield* controlled(smallLayout)
        const error = yield* Effect.flip(disk.addTorrent(storage))
        assert.strictEqual(error.reason, "Closed")
        assert.strictEqual(error.operation, "addTorrent")
        assert.match(error.message, /DiskIo\.addTorrent/)
      }).pipe(Effect.provide(base))
    )
  })

  describe("write coalescing", () => {
    const layout = Layout.make({
      name: "coalesce",
      pieceLength: 16 * BLOCK,
      files: [{ path: ["c.bin"], length: 32 * BLOCK }]
    })
    const bytes = random(layout.totalLength, 11)
    const part = (from: number, to: number) => bytes.subarray(from * BLOCK, to * BLOCK)

    it.effect("holds a piece's writes until enough are queued, and writes them as one run", () =>
      withTorrent(
        layout,
        ({ disk, pool, storage, t }) =>
          Effect.gen(function* () {
            yield* writeBlocks(disk, pool, t, 0, 0, part(0, 3))
            yield* TestClock.adjust("10 seconds")
            assert.strictEqual(storage.calls.writes, 0, "3 blocks of 4: held back")
            // Held-back writes are visible to reads (the store buffer).
            const read = yield* disk.read(t, 0, 0, 3 * BLOCK)
            assert.strictEqual(hex(concat(read.views)), hex(part(0, 3)))
            assert.strictEqual(storage.calls.reads, 0)
            read.release()
            yield* writeBlocks(disk, pool, t, 0, 3 * BLOCK, part(3, 4))
            yield* eventually(() => storage.calls.writes === 1, "the fourth block sends all four")
            yield* disk.flush(t)
            assert.strictEqual(storage.calls.writes, 1)
            assert.strictEqual(storage.calls.writeBuffers, 4)
            assert.strictEqual(hex(storage.bytes.subarray(0, 4 * BLOCK)), hex(part(0, 4)))
          }).pipe(Effect.scoped),
        { writeCoalesceBlocks: 4, writeDelay: "1 hour" }
      )
    )

    it.effect("a hash, a flush or a whole piece sends held-back writes at once", () =>
      withTorrent(
        layout,
        ({ disk, pool, storage, t }) =>
          Effect.gen(function* () {
            // A hash waits for the piece's writes: it must not wait for the (hour-long) delay.
            yield* writeBlocks(disk, pool, t, 0, 0, part(0, 2))
            const hashed = yield* disk.hash(t, 0)
            assert.strictEqual(storage.calls.writes, 1)
            const expected = new Uint8Array(16 * BLOCK)
            expected.set(part(0, 2))
            assert.strictEqual(hex(hashed.sha1), hex(sha1(expected)))
            // A flush sends what is held back.
            yield* writeBlocks(disk, pool, t, 1, 0, part(16, 18))
            assert.strictEqual(storage.calls.writes, 1)
            yield* disk.flush(t)
            assert.strictEqual(storage.calls.writes, 2)
            assert.strictEqual(hex(storage.bytes.subarray(16 * BLOCK, 18 * BLOCK)), hex(part(16, 18)))
          }).pipe(Effect.scoped),
        { writeCoalesceBlocks: 64, writeDelay: "1 hour" }
      )
    )

    it.effect("a piece smaller than the threshold is written once whole", () =>
      withTorrent(
        smallLayout,
        ({ disk, pool, storage, t }) =>
          Effect.gen(function* () {
            yield* writeBlocks(disk, pool, t, 0, 0, pieceBytes(smallLayout, data, 0))
            yield* eventually(() => storage.calls.writes === 1, "the whole piece goes")
            assert.strictEqual(storage.calls.writeBuffers, 4)
          }).pipe(Effect.scoped),
        { writeCoalesceBlocks: 16, writeDelay: "1 hour" }
      )
    )

    it.effect("writes nobody waits for go after the delay", () =>
      withTorrent(
        layout,
        ({ disk, pool, storage, t }) =>
          Effect.gen(function* () {
            yield* writeBlocks(disk, pool, t, 1, 5 * BLOCK, part(21, 22))
            yield* TestClock.adjust("19 millis")
            yield* Effect.repeatN(Effect.yieldNow(), 50)
            assert.strictEqual(storage.calls.writes, 0, "held back until the delay")
            yield* TestClock.adjust("1 millis")
            yield* eventually(() => storage.calls.writes === 1, "the delay sends it")
            assert.strictEqual(storage.calls.writes, 1)
            assert.strictEqual(hex(storage.bytes.subarray(21 * BLOCK, 22 * BLOCK)), hex(part(21, 22)))
          }).pipe(Effect.scoped),
        { writeCoalesceBlocks: 16, writeDelay: "20 millis" }
      )
    )

    it.effect("a piece still arriving is held past the delay, and goes once nothing came for it", () =>
      withTorrent(
        layout,
        ({ disk, pool, storage, t }) =>
          Effect.gen(function* () {
            // A block every 9 millis for 54 millis, past twice the delay: the piece is never half
            // the delay without one (the timer ticks every half).
            for (let i = 0; i < 6; i++) {
              yield* writeBlocks(disk, pool, t, 1, i * BLOCK, part(16 + i, 17 + i))
              yield* TestClock.adjust("9 millis")
              yield* Effect.repeatN(Effect.yieldNow(), 50)
              assert.strictEqual(storage.calls.writes, 0, `held while it arrives (block ${i})`)
            }
            // Then nothing more: written within one delay, as one run of all six.
            yield* TestClock.adjust("20 millis")
            yield* eventually(() => storage.calls.writes === 1, "the idle piece goes")
            assert.strictEqual(storage.calls.writeBuffers, 6)
            assert.strictEqual(hex(storage.bytes.subarray(16 * BLOCK, 22 * BLOCK)), hex(part(16, 22)))
          }).pipe(Effect.scoped),
        { writeCoalesceBlocks: 16, writeDelay: "20 millis" }
      )
    )

    it.effect("syncStored syncs what is on storage and leaves held-back writes held; sync sends them", () =>
      withTorrent(
        layout,
        ({ disk, pool, storage, t }) =>
          Effect.gen(function* () {
            yield* writeBlocks(disk, pool, t, 0, 0, part(0, 16))
            yield* eventually(() => storage.calls.writes === 1, "the whole piece goes")
            yield* writeBlocks(disk, pool, t, 1, 0, part(16, 19))
            yield* disk.syncStored(t)
            assert.strictEqual(disk.unsafeStats().syncs, 1)
            yield* Effect.repeatN(Effect.yieldNow(), 50)
            assert.strictEqual(storage.calls.writes, 1, "3 blocks of 16 still held")
            yield* disk.sync(t)
            assert.strictEqual(disk.unsafeStats().syncs, 2)
            assert.strictEqual(storage.calls.writes, 2)
            assert.strictEqual(hex(storage.bytes.subarray(16 * BLOCK, 19 * BLOCK)), hex(part(16, 19)))
          }).pipe(Effect.scoped),
        { writeCoalesceBlocks: 16, writeDelay: "1 hour" }
      )
    )
  })
})
