/**
 * Test helpers: a memory storage whose calls can be held, delayed or failed, and data helpers.
 */
import { BufferPool } from "@ezio/pool"
import { Hasher, Layout, Storage, StorageError } from "@ezio/storage"
import { Effect, Layer } from "effect"
import { DiskIo } from "../src/index.js"

export const BLOCK = 512

/** Hooks run before each storage call; they may wait, or fail with a StorageError. */
export interface Hooks {
  beforeRead?: (
    piece: number,
    offset: number,
    length: number
  ) => Effect.Effect<void, StorageError.StorageError>
  beforeWrite?: (
    piece: number,
    offset: number,
    length: number
  ) => Effect.Effect<void, StorageError.StorageError>
}

export interface Controlled extends Storage.StorageService {
  readonly bytes: Uint8Array
  readonly hooks: Hooks
  readonly calls: { reads: number; writes: number; writeBuffers: number; releases: number }
}

const total = (buffers: ReadonlyArray<Uint8Array>) => buffers.reduce((n, b) => n + b.length, 0)

/** A memory storage wrapped so tests can hold, delay or fail its calls. */
export const controlled = (layout: Layout.Layout, hooks: Hooks = {}): Effect.Effect<Controlled> =>
  Effect.map(Effect.orDie(Storage.makeMemory({ layout })), (base) => {
    const calls = { reads: 0, writes: 0, writeBuffers: 0, releases: 0 }
    return {
      ...base,
      hooks,
      calls,
      read: (piece, offset, buffers) =>
        Effect.suspend(() => {
          calls.reads++
          const before = hooks.beforeRead?.(piece, offset, total(buffers)) ?? Effect.void
          return Effect.zipRight(before, base.read(piece, offset, buffers))
        }),
      write: (piece, offset, buffers) =>
        Effect.suspend(() => {
          calls.writes++
          calls.writeBuffers += buffers.length
          const before = hooks.beforeWrite?.(piece, offset, total(buffers)) ?? Effect.void
          return Effect.zipRight(before, base.write(piece, offset, buffers))
        }),
      releaseFiles: Effect.sync(() => {
        calls.releases++
      })
    }
  })

export const ioError = (operation: "read" | "write", piece: number) =>
  new StorageError.StorageError({
    reason: "Io",
    operation,
    path: "memory",
    piece,
    cause: Object.assign(new Error("EIO: injected"), { code: "EIO" })
  })

/** The data helpers every package's tests share, re-exported for the tests here. */
export { concat, hex, random, sha1, sha256 } from "@ezio/test-support/data"

/** 4 pieces of 4 blocks; the last piece is short and ends in a short block. */
export const smallLayout = Layout.make({
  name: "small",
  pieceLength: 4 * BLOCK,
  files: [
    { path: ["a.bin"], length: 5 * BLOCK + 100 },
    { path: ["b.bin"], length: 8 * BLOCK + 200 }
  ]
})

export const poolOptions = (blocks: number, hardBlocks = blocks): BufferPool.Options => ({
  blockSize: BLOCK,
  capacity: blocks * BLOCK,
  hardLimit: hardBlocks * BLOCK,
  lowWatermark: 0.5,
  highWatermark: 0.75
})

/** Pool + inline hasher + engine, for tests that build their own storage. */
export const engineLayer = (
  options: DiskIo.Options = {},
  pool: BufferPool.Options = poolOptions(64),
  hasher: Layer.Layer<Hasher.Hasher> = Hasher.layerInline
) => DiskIo.layer(options).pipe(Layer.provideMerge(Layer.merge(Layer.orDie(BufferPool.layer(pool)), hasher)))

/** Writes `data` (the bytes of `piece` from `at`, whole blocks) through the engine. */
export const writeBlocks = (
  disk: DiskIo.DiskIoService,
  pool: BufferPool.BufferPoolService,
  torrent: DiskIo.TorrentHandle,
  piece: number,
  at: number,
  data: Uint8Array
) =>
  Effect.gen(function* () {
    let exceeded = false
    for (let offset = 0; offset < data.length; offset += pool.blockSize) {
      const chunk = data.subarray(offset, Math.min(data.length, offset + pool.blockSize))
      const block = pool.unsafeTryAcquire("write")
      if (block === undefined) return yield* Effect.dieMessage("test pool too small")
      block.bytes.set(chunk)
      const written = yield* disk.write(torrent, piece, at + offset, block)
      exceeded = exceeded || written.exceeded
    }
    return exceeded
  })

export const pieceBytes = (layout: Layout.Layout, data: Uint8Array, piece: number) =>
  data.subarray(piece * layout.pieceLength, piece * layout.pieceLength + Layout.pieceSize(layout, piece))
