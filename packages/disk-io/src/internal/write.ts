/**
 * Writes: `write` puts a block in the store buffer; the aio fibers take pieces with queued writes
 * and write a batch of each, as vectored storage writes of adjacent blocks. A write job is one
 * block; its counters move with the block through the store buffer.
 *
 * @internal
 */
import type { BufferPool } from "@ezio/pool"
import { Layout } from "@ezio/storage"
import * as Cause from "effect/Cause"
import * as Effect from "effect/Effect"
import type * as Scope from "effect/Scope"
import { DiskIoError } from "../DiskIoError.js"
import { type Engine, badPiece, errorOf } from "./engine.js"
import { takeGate } from "./gate.js"
import type { TorrentHandle, Written } from "./models.js"
import type { Entry, PieceState } from "./storeBuffer.js"

const notExceeded: Written = { exceeded: false }
const exceeded: Written = { exceeded: true }

/** @internal */
export const makeWrite = (engine: Engine) => {
  const { pool, store } = engine
  const bs = engine.blockSize

  return (
    handle: TorrentHandle,
    piece: number,
    offset: number,
    block: BufferPool.Block,
    length?: number
  ): Effect.Effect<Written, DiskIoError> =>
    Effect.uninterruptible(
      Effect.suspend(() => {
        const t = engine.lookup(handle, "write")
        const refuse = (error: DiskIoError) => {
          if (!block.released) block.release()
          return Effect.fail(error)
        }
        if (t instanceof DiskIoError) return refuse(t)
        if (block.released) {
          return Effect.fail(errorOf(t, "InvalidBlock", "write", { piece, offset }))
        }
        if (badPiece(t, piece)) return refuse(errorOf(t, "OutOfRange", "write", { piece, offset }))
        const size = Layout.pieceSize(t.layout, piece)
        if (!Number.isInteger(offset) || offset < 0 || offset >= size) {
          return refuse(errorOf(t, "OutOfRange", "write", { piece, offset }))
        }
        const expected = Math.min(bs, size - offset)
        if (offset % bs !== 0 || (length !== undefined && length !== expected)) {
          return refuse(
            errorOf(t, "Unaligned", "write", {
              piece,
              offset,
              ...(length === undefined ? {} : { length }),
              detail: `blocks are ${bs} bytes; the block at this offset is ${expected} bytes`
            })
          )
        }
        return Effect.map(pool.transfer([block], engine.holdScope), () => {
          store.insert(store.piece(t, piece), offset, expected, block)
          if (!pool.unsafeIsExceeded()) return notExceeded
          store.urgeAll()
          return exceeded
        })
      })
    )
}

/**
 * Starts the aio fibers and the timer that sends held-back writes of pieces nobody waits for (a
 * peer went away mid-piece), in `scope`.
 *
 * @internal
 */
export const startWriters = (engine: Engine, scope: Scope.Scope): Effect.Effect<void> => {
  const { io, store } = engine
  const bs = engine.blockSize

  const nextPiece = Effect.async<PieceState>((resume) => {
    const piece = store.takeReady()
    if (piece !== undefined) return resume(Effect.succeed(piece))
    const wake = (p: PieceState) => resume(Effect.succeed(p))
    store.idle.push(wake)
    return Effect.sync(() => {
      const i = store.idle.indexOf(wake)
      if (i >= 0) store.idle.splice(i, 1)
    })
  })

  const bytesOf = (entry: Entry) =>
    entry.length === bs ? entry.block.bytes : entry.block.bytes.subarray(0, entry.length)

  const writeBatch = (piece: PieceState): Effect.Effect<void> =>
    Effect.zipRight(
      takeGate(io),
      Effect.suspend(() => {
        const batch = store.selectBatch(piece)
        if (batch.length === 0) return Effect.void
        const storage = piece.torrent.storage
        return Effect.forEach(
          store.runs(batch),
          (run) =>
            Effect.exit(
              Effect.uninterruptible(storage.write(piece.index, run[0]!.offset, run.map(bytesOf)))
            ).pipe(
              Effect.map((exit) =>
                store.complete(run, exit._tag === "Success" ? undefined : Cause.squash(exit.cause))
              )
            ),
          { discard: true }
        )
      }).pipe(
        Effect.ensuring(
          Effect.sync(() => {
            io.release()
            store.batchDone(piece)
          })
        )
      )
    )

  const worker = nextPiece.pipe(
    Effect.flatMap((piece) =>
      Effect.catchAllCause(writeBatch(piece), (cause) =>
        Effect.logError("DiskIo: a write batch failed unexpectedly", cause)
      )
    ),
    Effect.forever
  )

  return Effect.gen(function* () {
    for (let i = 0; i < engine.config.aioThreads; i++) yield* Effect.forkIn(worker, scope)
    // On Effect's Clock, so tests drive it with TestClock.
    yield* Effect.sleep(engine.config.writeDelay).pipe(
      Effect.zipRight(Effect.sync(() => store.urgeAll())),
      Effect.forever,
      Effect.forkIn(scope)
    )
  })
}
