// The pool's public data types, here so the internal modules can use them without importing
// BufferPool.ts (which imports them): BufferPool.ts re-exports them.

/**
 * Sizes in bytes, watermarks as fractions of `capacity`. Every field has a default.
 *
 * @since 0.1.0
 * @category models
 */
export interface Options {
  /** Bytes per block; a power of two. Default 16 KiB, BitTorrent's request size. */
  readonly blockSize?: number
  /** The pool's nominal size; watermarks are fractions of it. Default 256 MiB. */
  readonly capacity?: number
  /** Back to normal when in use falls to this fraction of capacity. Default 1/2. */
  readonly lowWatermark?: number
  /** Exceeded when in use reaches this fraction of capacity. Default 7/8 (EZIO's; libtorrent uses 3/4). */
  readonly highWatermark?: number
  /**
   * No block is handed out past this many bytes; waiting acquisitions queue, non-waiting ones
   * fail with `PoolExhausted`. Default: `capacity`. Set it higher to allow libtorrent-style soft
   * over-allocation above the capacity while backpressure brings usage back down.
   */
  readonly hardLimit?: number
  /** Names this pool in errors, logs and metric tags. Default "default". */
  readonly name?: string
}

/**
 * What a block is for. Only statistics and metrics look at it: no category has a limit of its own.
 *
 * @since 0.1.0
 * @category models
 */
export type Category = "read" | "write" | "hash"

/**
 * A leased block. `bytes` is a view of `blockSize` bytes into a `SharedArrayBuffer` slab, so it
 * can be posted to a worker without a copy (never transfer it: that would detach the whole slab).
 * Reading `bytes` after release is a defect (`BlockOwnershipError`), as is releasing twice.
 *
 * @since 0.1.0
 * @category models
 */
export interface Block {
  readonly bytes: Uint8Array
  readonly category: Category
  /** True once the block went back to the pool. */
  readonly released: boolean
  /**
   * Gives the block back now, before its scope closes (the scope then skips it). For the hot
   * path: the socket's write callback releases the block it just sent.
   */
  release(): void
}
