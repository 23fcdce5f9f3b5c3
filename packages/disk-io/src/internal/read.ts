/**
 * Reads: whatever the store buffer holds is copied from there, the rest read from storage into
 * pool blocks, while the piece's later writes wait (so storage does not change under the read).
 * `unsafeReadOwned` is the same read for plain code (one read per run of requests) when no pool
 * blocks need waiting for: no fiber, the storage's callback read.
 *
 * @internal
 */
import type { BufferPool } from "@ezio/pool"
import { Layout, type StorageError } from "@ezio/storage"
import * as Cause from "effect/Cause"
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
import * as Scope from "effect/Scope"
import { DiskIoError } from "../DiskIoError.js"
import {
  badPiece,
  callUnsafe,
  type Engine,
  errorOf,
  Job,
  poolError,
  releaseAll,
  type Restore
} from "./engine.js"
import { waitGate } from "./gate.js"
import type { Read, TorrentHandle } from "./models.js"
import { sliceViews, type TorrentState } from "./storeBuffer.js"

const emptyRead: Read = { blocks: [], views: [], length: 0, release: () => {} }

const makeRead = (
  blocks: ReadonlyArray<BufferPool.Block>,
  views: ReadonlyArray<Uint8Array>,
  length: number
): Read => ({
  blocks,
  views,
  length,
  release: () => releaseAll(blocks)
})

/** A request `read` refuses: not whole numbers, or outside the piece. */
const outOfPiece = (t: TorrentState, piece: number, offset: number, length: number): boolean =>
  badPiece(t, piece) ||
  !Number.isInteger(offset) ||
  !Number.isInteger(length) ||
  offset < 0 ||
  length < 0 ||
  offset + length > Layout.pieceSize(t.layout, piece)

/** @internal */
export const makeReads = (engine: Engine) => {
  const { io, pool, store } = engine
  const bs = engine.blockSize

  /** The views of `views` (the read's, from `offset`) that the miss `from`..`to` fills. */
  const missViews = (views: Array<Uint8Array>, offset: number, length: number, from: number, to: number) =>
    from === offset && to === offset + length ? views : sliceViews(views, bs, from - offset, to - offset)

  /** A read's blocks are the caller's now. */
  const succeeded = (job: Job, length: number): void => {
    job.handOff()
    job.close(true)
    engine.bytesRead += length
  }

  const readMisses = (
    t: TorrentState,
    piece: number,
    offset: number,
    length: number,
    misses: Array<number>,
    views: Array<Uint8Array>
  ): Effect.Effect<void, DiskIoError> => {
    const storage = t.storage
    const one = (from: number, to: number) =>
      storage.read(piece, from, missViews(views, offset, length, from, to))
    let effect: Effect.Effect<void, StorageError.StorageError>
    if (misses.length === 2) effect = one(misses[0]!, misses[1]!)
    else {
      const pairs: Array<number> = []
      for (let i = 0; i < misses.length; i += 2) pairs.push(i)
      effect = Effect.forEach(pairs, (i) => one(misses[i]!, misses[i + 1]!), { discard: true })
    }
    return Effect.mapError(Effect.uninterruptible(effect), (cause) =>
      errorOf(t, "Storage", "read", { piece, offset, length, cause })
    )
  }

  // Inside the read's uninterruptible region, with its blocks: copy what the store buffer
  // holds, read the rest from storage (holding back later writes of the piece meanwhile).
  const startRead = (
    job: Job,
    t: TorrentState,
    piece: number,
    offset: number,
    length: number,
    blocks: ReadonlyArray<BufferPool.Block>,
    target: Scope.Scope,
    restore: Restore
  ): Effect.Effect<Read, DiskIoError> => {
    job.holdBlocks(blocks)
    const views = engine.viewsOf(blocks, length)
    const existing = t.pieces.get(piece)
    const misses = store.overlay(existing, offset, length, views)
    const read = makeRead(blocks, views, length)
    const done = () => {
      succeeded(job, length)
      return Effect.as(pool.transfer(blocks, target), read)
    }
    if (misses.length === 0) return done()
    job.enterReader(existing ?? store.piece(t, piece), store.seq)
    // The I/O itself is uninterruptible (the kernel writes into the blocks until it returns);
    // run inside `restore`, an interruption meanwhile is delivered as soon as it returns, and
    // lands in `onFailure` below, which gives the blocks back.
    const storageRead = restore(readMisses(t, piece, offset, length, misses, views))
    let run: Effect.Effect<void, DiskIoError>
    if (job.tryPermit(io)) {
      job.start()
      run = storageRead
    } else {
      run = Effect.zipRight(
        restore(waitGate(io)),
        Effect.suspend(() => {
          job.holdPermit(io)
          job.start()
          return storageRead
        })
      )
    }
    return Effect.matchCauseEffect(run, {
      onFailure: (cause) => {
        job.close(false)
        return Effect.failCause(cause)
      },
      onSuccess: done
    })
  }

  const readInto = (
    handle: TorrentHandle,
    piece: number,
    offset: number,
    length: number,
    target: Scope.Scope
  ): Effect.Effect<Read, DiskIoError> =>
    Effect.uninterruptibleMask((restore) =>
      Effect.suspend(() => {
        const t = engine.lookup(handle, "read")
        if (t instanceof DiskIoError) return Effect.fail(t)
        if (outOfPiece(t, piece, offset, length))
          return Effect.fail(errorOf(t, "OutOfRange", "read", { piece, offset, length }))
        if (length === 0) return Effect.succeed(emptyRead)
        const count = Math.ceil(length / bs)
        const job = new Job(store, engine.jobs.read)
        const blocks = engine.tryTakeN(count, "read")
        if (blocks !== undefined) return startRead(job, t, piece, offset, length, blocks, target, restore)
        return Effect.matchCauseEffect(engine.takeBlocksSlow(count, "read", restore), {
          onFailure: (cause) => {
            job.close(false)
            return Effect.failCause(Cause.map(cause, (error) => poolError(t, "read", piece, error)))
          },
          onSuccess: (blocks) => startRead(job, t, piece, offset, length, blocks, target, restore)
        })
      })
    )

  /**
   * `readOwned` in plain code: true if it started, and `onExit` will be called once (never on
   * this stack); a read that needs an io permit while none is free queues for one (a target's
   * writers often hold them all). False, having done nothing, when the read would wait for pool
   * blocks, the request is one `readOwned` refuses, or the storage has no callback read. Nothing
   * interrupts it: closing the engine waits for it to answer.
   */
  const unsafeReadOwned = (
    handle: TorrentHandle,
    piece: number,
    offset: number,
    length: number,
    onExit: (exit: Exit.Exit<Read, DiskIoError>) => void
  ): boolean => {
    const t = engine.lookup(handle, "read")
    if (t instanceof DiskIoError || outOfPiece(t, piece, offset, length) || length === 0) return false
    const unsafeRead = t.storage.read.unsafe
    if (unsafeRead === undefined) return false
    const blocks = engine.tryTakeN(Math.ceil(length / bs), "read")
    if (blocks === undefined) return false
    const views = engine.viewsOf(blocks, length)
    const existing = t.pieces.get(piece)
    const misses = store.overlay(existing, offset, length, views)
    // No free io permit (a target's writers hold them): queue for one in plain code, as
    // `readInto` would in a fiber, rather than pay for a fiber per read.
    const permitted = misses.length === 0 || io.tryTake()
    const job = new Job(store, engine.jobs.read)
    job.holdBlocks(blocks)
    engine.callbackJobs++
    let returned = false
    const finish = (error: DiskIoError | undefined): void => {
      if (!returned) return queueMicrotask(() => finish(error))
      engine.callbackJobs--
      if (error === undefined) {
        succeeded(job, length)
        pool.unsafeTransfer(blocks, engine.holdScope)
      } else job.close(false)
      store.checkDrained()
      onExit(error === undefined ? Exit.succeed(makeRead(blocks, views, length)) : Exit.fail(error))
    }
    if (misses.length === 0) {
      returned = true
      queueMicrotask(() => finish(undefined))
      return true
    }
    job.enterReader(existing ?? store.piece(t, piece), store.seq)
    // Miss by miss, each through the storage's callback read (its own fiber if it cannot).
    const next = (at: number): void => {
      if (at === misses.length) return finish(undefined)
      const from = misses[at]!
      const to = misses[at + 1]!
      callUnsafe(unsafeRead, piece, from, missViews(views, offset, length, from, to), (exit) => {
        if (Exit.isSuccess(exit)) next(at + 2)
        else finish(errorOf(t, "Storage", "read", { piece, offset, length, cause: Cause.squash(exit.cause) }))
      })
    }
    const begin = (): void => {
      job.holdPermit(io)
      job.start()
      next(0)
    }
    // Granted from inside another job's release: the read starts on a stack of its own.
    if (permitted) begin()
    else io.enqueue().wake = () => queueMicrotask(begin)
    returned = true
    return true
  }

  return {
    unsafeReadOwned,
    readOwned: (handle: TorrentHandle, piece: number, offset: number, length: number) =>
      readInto(handle, piece, offset, length, engine.holdScope),
    read: (handle: TorrentHandle, piece: number, offset: number, length: number) =>
      Effect.flatMap(Effect.scope, (target) => readInto(handle, piece, offset, length, target))
  }
}
