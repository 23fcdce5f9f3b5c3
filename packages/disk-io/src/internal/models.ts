/**
 * The engine's public models, in a module of their own so the internal modules can use them
 * without importing `DiskIo.ts` (which imports them). `DiskIo.ts` re-exports every one.
 *
 * @internal
 */
import type { BufferPool } from "@ezio/pool"
import type { Layout, Storage } from "@ezio/storage"
import type * as Duration from "effect/Duration"
import type { DiskIoError } from "../DiskIoError.js"

/**
 * @since 0.1.0
 * @category models
 */
export interface Options {
  /**
   * Storage jobs (reads, write batches, the reads of hashes) in flight at once: libtorrent's
   * `aio_threads`. Default 4.
   */
  readonly aioThreads?: number
  /** Hash jobs at once: libtorrent's `hashing_threads`. Default: the hasher's threads (at least 1). */
  readonly hashThreads?: number
  /**
   * Blocks a hash reads (and sends to a hashing thread) per step; a 16 MiB piece is hashed in
   * steps so it never holds 16 MiB of the pool. Rounded up to a multiple of 16 KiB. Default 64.
   */
  readonly hashChunkBlocks?: number
  /** Most blocks per vectored storage write. Default 64. */
  readonly maxWriteBlocks?: number
  /**
   * A piece's writes wait in the store buffer until this many are queued (or the piece is whole),
   * so blocks arriving one by one reach storage as a few large vectored writes. They go at once
   * when anyone waits for them (a hash, `clearPiece`, `flush`, closing), when the pool is past its
   * high watermark, and otherwise once no block of their piece came in for `writeDelay` (half
   * of it at least: the timer ticks every half). 1 writes every block at once.
   * Default 64 (1 MiB): a piece of up to 1 MiB is written at once, whole, and its hash reads
   * the blocks in place from the store buffer instead of reading the piece back.
   */
  readonly writeCoalesceBlocks?: number
  /**
   * How long a held-back piece may go without a new block before its writes go (a piece still
   * arriving is written once whole). Default 100 millis.
   */
  readonly writeDelay?: Duration.DurationInput
  /**
   * Bytes of written blocks the engine may hold (waiting for storage, or kept for a hash) before
   * `write` reports `exceeded`; `awaitWritable` then waits until they are down to half. Far below
   * a large pool, so a download's data in flight stays in the CPU caches from the copy out of the
   * socket through the hash to the storage write (libtorrent's `max_queued_disk_bytes`); the
   * pool's high watermark still applies. Rounded up to whole blocks. Default 16 MiB.
   */
  readonly maxQueuedBytes?: number
  /** Names the engine in metric tags and logs. Default "default". */
  readonly name?: string
}

/**
 * A torrent added to the engine. Jobs take it as their first argument.
 *
 * @since 0.1.0
 * @category models
 */
export interface TorrentHandle {
  readonly id: number
  readonly name: string
  readonly layout: Layout.Layout
  readonly storage: Storage.StorageService
}

/**
 * A finished read: `length` bytes in `blocks`, `blockSize` bytes per block except the last;
 * `views[i]` is the valid part of `blocks[i]`. Whoever holds it releases the blocks, with
 * `release()` or `Block.release()` one by one (in the socket's write callback, say).
 *
 * @since 0.1.0
 * @category models
 */
export interface Read {
  readonly blocks: ReadonlyArray<BufferPool.Block>
  readonly views: ReadonlyArray<Uint8Array>
  readonly length: number
  /** Releases every block not released yet. */
  release(): void
}

/**
 * A write is in the store buffer: `exceeded` is true when the pool is past its high watermark or
 * the engine holds more than `maxQueuedBytes` of written blocks, and the peer that sent the block
 * should stop reading its socket until `awaitWritable`.
 *
 * @since 0.1.0
 * @category models
 */
export interface Written {
  readonly exceeded: boolean
}

/**
 * One block of a `writeMany` batch: the arguments of one `write`.
 *
 * @since 0.1.0
 * @category models
 */
export interface BlockWrite {
  readonly piece: number
  readonly offset: number
  readonly block: BufferPool.Block
  readonly length?: number
}

/**
 * A `writeMany` batch is in the store buffer, but for `failures`: the index in the batch of each
 * write that was refused, and why. `exceeded` as for `Written`.
 *
 * @since 0.1.0
 * @category models
 */
export interface WrittenMany {
  readonly exceeded: boolean
  readonly failures: ReadonlyArray<{ readonly index: number; readonly error: DiskIoError }>
}

/**
 * @since 0.1.0
 * @category models
 */
export interface HashOptions {
  /** Also return SHA-256 of each 16 KiB block of the piece (BEP 52 leaf hashes). */
  readonly v2?: boolean
}

/**
 * @since 0.1.0
 * @category models
 */
export interface Hashed {
  /** SHA-1 of the whole piece (v1). */
  readonly sha1: Uint8Array
  /** With `v2`: SHA-256 of each 16 KiB block, the last one short. */
  readonly blockHashes?: ReadonlyArray<Uint8Array>
}

/**
 * @since 0.1.0
 * @category models
 */
export const jobKinds = ["read", "write", "hash"] as const

/**
 * @since 0.1.0
 * @category models
 */
export type JobKind = (typeof jobKinds)[number]

/**
 * Jobs of one kind. For writes, a job is one block: queued in the store buffer, or being written.
 *
 * @since 0.1.0
 * @category models
 */
export interface JobCounts {
  readonly queued: number
  readonly running: number
  readonly completed: number
  readonly failed: number
}

/**
 * A snapshot of the engine's counters, for observability only.
 *
 * @since 0.1.0
 * @category models
 */
export interface Stats {
  readonly name: string
  readonly aioThreads: number
  readonly hashThreads: number
  readonly torrents: number
  readonly jobs: Readonly<Record<JobKind, JobCounts>>
  readonly bytesRead: number
  /** Of `bytesRead`, served from pending writes in the store buffer. */
  readonly bytesReadFromStoreBuffer: number
  readonly bytesWritten: number
  readonly bytesHashed: number
  /** Written blocks not on storage yet (each holds one pool block). */
  readonly storeBufferBlocks: number
  readonly storeBufferPeak: number
  readonly writeErrors: number
  /** Storage write batches (each one or more vectored writes of adjacent blocks). */
  readonly writeBatches: number
  /** `sync` jobs that reached stable storage (a torrent's files forced to disk). */
  readonly syncs: number
  readonly poolInUse: number
  readonly poolPeak: number
  readonly poolHardLimit: number
}
