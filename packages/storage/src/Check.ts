/**
 * The resume path: hash what a target already holds, piece by piece, into a have-bitfield, so an
 * interrupted deploy continues where it stopped. Reads go into pool blocks; hashing runs on the
 * hasher's worker threads while the main thread reads the next pieces, so both cores work.
 *
 * @since 0.1.0
 */
import { BufferPool } from "@ezio/pool"
import * as Effect from "effect/Effect"
import * as Bitfield from "./Bitfield.js"
import { type HashError, Hasher } from "./Hasher.js"
import * as Layout from "./Layout.js"
import type { StorageService } from "./Storage.js"
import type { StorageError } from "./StorageError.js"

/**
 * @since 0.1.0
 * @category models
 */
export interface Progress {
  readonly checked: number
  readonly total: number
  readonly have: number
  readonly bytesChecked: number
}

/**
 * @since 0.1.0
 * @category models
 */
export interface Options {
  /** The torrent's SHA-1 piece hashes, 20 bytes each. */
  readonly pieceHashes: Uint8Array
  /** Pieces in flight at once. Default: twice the hasher's threads (at least 2). */
  readonly concurrency?: number
  /** Blocks per read request. Default 64 (1 MiB of 16 KiB blocks). */
  readonly chunkBlocks?: number
  /** Called after each piece. */
  readonly onProgress?: (progress: Progress) => void
}

/**
 * Hashes every piece of `storage`. A piece whose data is missing (no file yet, or a file that ends
 * early) or does not match its hash is simply not had; any other I/O error (EIO, EACCES) fails the
 * check with the typed error, since a failing disk is something the admin must hear about.
 * Runs in a span `ezio.storage.check` (torrent, pieces, bytes; `have` once done).
 *
 * @since 0.1.0
 * @category constructors
 */
export const check = (
  storage: StorageService,
  options: Options
): Effect.Effect<
  Bitfield.Bitfield,
  StorageError | HashError | BufferPool.PoolClosed | BufferPool.PoolExhausted,
  BufferPool.BufferPool | Hasher
> =>
  Effect.gen(function* () {
    const pool = yield* BufferPool.BufferPool
    const hasher = yield* Hasher
    const { layout } = storage
    const have = Bitfield.make(layout.pieceCount)
    const chunkBytes = (options.chunkBlocks ?? 64) * pool.blockSize
    const concurrency = options.concurrency ?? Math.max(2, hasher.threads * 2)
    let checked = 0
    let bytesChecked = 0
    let had = 0

    const checkPiece = (piece: number) =>
      Effect.gen(function* () {
        const size = Layout.pieceSize(layout, piece)
        const job = hasher.begin({ algorithm: "sha1" })
        let digest: Uint8Array | undefined
        for (let offset = 0; offset < size; offset += chunkBytes) {
          const length = Math.min(chunkBytes, size - offset)
          const final = offset + length >= size
          digest = yield* pool.withBlocks(Math.ceil(length / pool.blockSize), "hash", (blocks) => {
            const views = blocks.map((b, i) =>
              b.bytes.subarray(0, Math.min(pool.blockSize, length - i * pool.blockSize))
            )
            return Effect.flatMap(storage.read(piece, offset, views), () =>
              final ? Effect.map(job.final(views), (d) => d.digest) : Effect.as(job.update(views), undefined)
            )
          })
        }
        const expected = options.pieceHashes.subarray(piece * 20, piece * 20 + 20)
        return digest !== undefined && Buffer.compare(digest, expected) === 0
      }).pipe(
        // Data not there yet is a piece we don't have, not a failure.
        Effect.catchIf(
          (error): error is StorageError =>
            error._tag === "StorageError" && (error.reason === "NotFound" || error.reason === "ShortRead"),
          () => Effect.succeed(false)
        ),
        Effect.tap((ok) =>
          Effect.sync(() => {
            if (ok) {
              Bitfield.set(have, piece)
              had++
            }
            checked++
            bytesChecked += Layout.pieceSize(layout, piece)
            options.onProgress?.({ checked, total: layout.pieceCount, have: had, bytesChecked })
          })
        )
      )

    yield* Effect.forEach(
      Array.from({ length: layout.pieceCount }, (_, i) => i),
      checkPiece,
      { concurrency, discard: true }
    )
    yield* Effect.annotateCurrentSpan("have", had)
    return have
  }).pipe(
    Effect.withSpan("ezio.storage.check", {
      attributes: {
        torrent: storage.layout.name,
        pieces: storage.layout.pieceCount,
        bytes: storage.layout.totalLength
      }
    })
  )
