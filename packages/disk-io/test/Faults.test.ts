/**
 * Real files: a directory storage over `FileIo.faulty` (ENOSPC, EIO and short transfers injected
 * on chosen syscalls) and the worker-thread hasher.
 */
import * as NFS from "node:fs"
import * as NOS from "node:os"
import * as NPath from "node:path"
import { assert, describe, it } from "@effect/vitest"
import { BufferPool } from "@ezio/pool"
import { FileIo, Hasher, Layout, Storage } from "@ezio/storage"
import { Effect } from "effect"
import { DiskIo } from "../src/index.js"
import { BLOCK, concat, hex, random, sha1, sha256 } from "./util.js"

const tempDir = Effect.acquireRelease(
  Effect.sync(() => NFS.mkdtempSync(NPath.join(NOS.tmpdir(), "ezio-disk-io-"))),
  (dir) => Effect.sync(() => NFS.rmSync(dir, { recursive: true, force: true }))
)

const layout = Layout.make({
  name: "faults",
  pieceLength: 32 * BLOCK, // 16 KiB pieces: one v2 leaf each
  files: [
    { path: ["one.bin"], length: 40 * BLOCK },
    { path: ["sub", "two.bin"], length: 60 * BLOCK + 123 }
  ]
})
const data = random(layout.totalLength, 5)
const pieceData = (piece: number) =>
  data.subarray(piece * layout.pieceLength, piece * layout.pieceLength + Layout.pieceSize(layout, piece))

const withDisk = <A, E>(
  fileIo: FileIo.FileIo,
  body: (
    disk: DiskIo.DiskIoService,
    pool: BufferPool.BufferPoolService,
    t: DiskIo.TorrentHandle
  ) => Effect.Effect<A, E, import("effect/Scope").Scope>
) =>
  Effect.gen(function* () {
    const dir = yield* tempDir
    const pool = yield* BufferPool.make({ blockSize: BLOCK, capacity: 256 * BLOCK })
    const hasher = yield* Hasher.make({ threads: 2 })
    yield* Effect.scoped(
      Effect.gen(function* () {
        const storage = yield* Storage.makeDirectory({ layout, root: dir, fileIo, durability: "none" })
        const disk = yield* DiskIo.make({ aioThreads: 3 }).pipe(
          Effect.provideService(BufferPool.BufferPool, pool),
          Effect.provideService(Hasher.Hasher, hasher)
        )
        const t = yield* disk.addTorrent(storage)
        yield* body(disk, pool, t)
      })
    )
    assert.strictEqual(pool.unsafeStats().inUse, 0, "every block back after the engine closed")
  }).pipe(Effect.scoped)

const writePiece = (
  disk: DiskIo.DiskIoService,
  pool: BufferPool.BufferPoolService,
  t: DiskIo.TorrentHandle,
  piece: number
) =>
  Effect.forEach(
    Array.from({ length: Math.ceil(Layout.pieceSize(layout, piece) / BLOCK) }, (_, i) => i),
    (i) => {
      const block = pool.unsafeTryAcquire("write")!
      const bytes = pieceData(piece).subarray(i * BLOCK, (i + 1) * BLOCK)
      block.bytes.set(bytes)
      return disk.write(t, piece, i * BLOCK, block)
    },
    { discard: true }
  )

describe("DiskIo on files", () => {
  it.live("writes, reads back and hashes on worker threads (v1 and v2)", () =>
    withDisk(FileIo.node, (disk, pool, t) =>
      Effect.gen(function* () {
        for (let piece = 0; piece < layout.pieceCount; piece++) yield* writePiece(disk, pool, t, piece)
        for (let piece = 0; piece < layout.pieceCount; piece++) {
          const hashed = yield* disk.hash(t, piece, { v2: true })
          assert.strictEqual(hex(hashed.sha1), hex(sha1(pieceData(piece))))
          assert.deepStrictEqual(hashed.blockHashes?.map(hex), [hex(sha256(pieceData(piece)))])
        }
        yield* disk.flush(t)
        // A read across the file boundary (piece 1 spans one.bin and two.bin).
        const read = yield* Effect.scoped(
          Effect.map(disk.read(t, 1, 5 * BLOCK + 7, 6 * BLOCK), (r) => concat(r.views))
        )
        assert.strictEqual(hex(read), hex(pieceData(1).subarray(5 * BLOCK + 7, 11 * BLOCK + 7)))
        assert.strictEqual(disk.unsafeStats().bytesWritten, layout.totalLength)
        assert.strictEqual(disk.unsafeStats().syncs, 0)
        yield* disk.sync(t)
        assert.strictEqual(disk.unsafeStats().syncs, 1)
        yield* disk.releaseFiles(t)
      })
    )
  )

  it.live("ENOSPC on a write: the piece's hash and the flush fail with it; nothing leaks", () =>
    withDisk(
      FileIo.faulty((call, n) => (call === "writev" && n === 0 ? "ENOSPC" : undefined)),
      (disk, pool, t) =>
        Effect.gen(function* () {
          yield* writePiece(disk, pool, t, 0)
          yield* disk.flush(t).pipe(Effect.ignore)
          const error = yield* Effect.flip(disk.hash(t, 0))
          assert.strictEqual(error.reason, "WriteFailed")
          const cause = error.cause as { _tag: string; reason: string }
          assert.strictEqual(cause._tag, "StorageError")
          assert.strictEqual(cause.reason, "NoSpace")
          assert.match(error.message, /no space left/)
          assert.strictEqual((yield* Effect.flip(disk.flush(t))).reason, "WriteFailed")
          assert.strictEqual(pool.unsafeStats().inUse, 0)
          // Space is back: clear, download again, verify.
          yield* disk.clearPiece(t, 0)
          yield* writePiece(disk, pool, t, 0)
          assert.strictEqual(hex((yield* disk.hash(t, 0)).sha1), hex(sha1(pieceData(0))))
          yield* disk.flush(t)
        })
    )
  )

  // two.bin is open by then (piece 2's write opened it), so the failing write of piece 3 is the
  // storage's callback write, with no fiber.
  it.live("ENOSPC on a write to a file already open: the piece's hash fails with it; nothing leaks", () =>
    withDisk(
      FileIo.faulty((call, n) => (call === "writev" && n === 1 ? "ENOSPC" : undefined)),
      (disk, pool, t) =>
        Effect.gen(function* () {
          yield* writePiece(disk, pool, t, 2)
          yield* disk.flush(t)
          yield* writePiece(disk, pool, t, 3)
          const error = yield* Effect.flip(disk.hash(t, 3))
          assert.strictEqual(error.reason, "WriteFailed")
          const cause = error.cause as { _tag: string; reason: string; piece: number }
          assert.strictEqual(cause._tag, "StorageError")
          assert.strictEqual(cause.reason, "NoSpace")
          assert.strictEqual(cause.piece, 3)
          assert.strictEqual(pool.unsafeStats().inUse, 0)
          yield* disk.clearPiece(t, 3)
          yield* writePiece(disk, pool, t, 3)
          assert.strictEqual(hex((yield* disk.hash(t, 3)).sha1), hex(sha1(pieceData(3))))
          assert.strictEqual(hex((yield* disk.hash(t, 2)).sha1), hex(sha1(pieceData(2))))
          yield* disk.flush(t)
        })
    )
  )

  it.live("EIO and short reads fail reads and hashes with typed errors", () =>
    withDisk(
      FileIo.faulty((call, n) =>
        call === "readv" ? (n === 0 ? "EIO" : n === 1 ? "short" : undefined) : undefined
      ),
      (disk, pool, t) =>
        Effect.gen(function* () {
          yield* writePiece(disk, pool, t, 2)
          yield* disk.flush(t)
          const eio = yield* Effect.flip(disk.readOwned(t, 2, 0, 4 * BLOCK))
          assert.strictEqual(eio.reason, "Storage")
          assert.strictEqual((eio.cause as { reason: string }).reason, "Io")
          // A short transfer is resumed by storage; the next one succeeds.
          const read = yield* disk.readOwned(t, 2, 0, 4 * BLOCK)
          assert.strictEqual(hex(concat(read.views)), hex(pieceData(2).subarray(0, 4 * BLOCK)))
          read.release()
          assert.strictEqual(pool.unsafeStats().inUse, 0)
        })
    )
  )
})
