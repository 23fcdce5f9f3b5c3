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
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
import * as Runtime from "effect/Runtime"
import type * as Scope from "effect/Scope"
import { DiskIoError } from "../DiskIoError.js"
import { type Engine, badPiece, callUnsafe, errorOf } from "./engine.js"
import type { BlockWrite, TorrentHandle, Written, WrittenMany } from "./models.js"
import type { Entry, PieceState, TorrentState } from "./storeBuffer.js"

const notExceeded: Written = { exceeded: false }
const exceeded: Written = { exceeded: true }

/** @internal */
export const makeWrite = (engine: Engine) => {
  const { pool, store } = engine
  const bs = engine.blockSize

  /**
   * Why the engine refuses this write, or the piece state and block size it goes in with. Plain
   * code: `write` and `writeMany` check the same way, and refuse before anything is transferred.
   */
  const check = (
    t: TorrentState,
    piece: number,
    offset: number,
    block: BufferPool.Block,
    length: number | undefined
  ): DiskIoError | number => {
    if (block.released) return errorOf(t, "InvalidBlock", "write", { piece, offset })
    if (badPiece(t, piece)) return errorOf(t, "OutOfRange", "write", { piece, offset })
    const size = Layout.pieceSize(t.layout, piece)
    if (!Number.isInteger(offset) || offset < 0 || offset >= size) {
      return errorOf(t, "OutOfRange", "write", { piece, offset })
    }
    const expected = Math.min(bs, size - offset)
    if (offset % bs !== 0 || (length !== undefined && length !== expected)) {
      return errorOf(t, "Unaligned", "write", {
        piece,
        offset,
        ...(length === undefined ? {} : { length }),
        detail: `blocks are ${bs} bytes; the block at this offset is ${expected} bytes`
      })
    }
    return expected
  }

  /** A refused block goes back to the pool, unless it was no valid block to begin with. */
  const refused = (block: BufferPool.Block, error: DiskIoError): DiskIoError => {
    if (error.reason !== "InvalidBlock" && !block.released) block.release()
    return error
  }

  const afterInsert = (): boolean => {
    if (!pool.unsafeIsExceeded()) return store.heldExceeded()
    store.urgeAll()
    return true
  }

  const heldDown: Effect.Effect<void> = Effect.async<void>((resume) => {
    const wake = () => resume(Effect.void)
    store.heldWaiters.push(wake)
    // Nothing but pieces held back to coalesce in the way: they go now, not after `writeDelay`.
    if (store.held - store.deferredBlocks() <= store.resumeHeld) store.urgeAll()
    return Effect.sync(() => {
      const i = store.heldWaiters.indexOf(wake)
      if (i >= 0) store.heldWaiters.splice(i, 1)
    })
  })

  // After `exceeded`: the pool back to normal, then the engine's written blocks down to half of
  // `maxQueuedBytes`.
  const awaitWritable: Effect.Effect<void> = Effect.zipRight(
    pool.awaitNormal,
    Effect.suspend(() => (store.held <= store.resumeHeld ? Effect.void : heldDown))
  )

  const write = (
    handle: TorrentHandle,
    piece: number,
    offset: number,
    block: BufferPool.Block,
    length?: number
  ): Effect.Effect<Written, DiskIoError> =>
    Effect.uninterruptible(
      Effect.suspend(() => {
        const t = engine.lookup(handle, "write")
        if (t instanceof DiskIoError) {
          if (!block.released) block.release()
          return Effect.fail(t)
        }
        const expected = check(t, piece, offset, block, length)
        if (typeof expected !== "number") return Effect.fail(refused(block, expected))
        return Effect.map(pool.transfer([block], engine.holdScope), () => {
          store.insert(store.piece(t, piece), offset, expected, block)
          return afterInsert() ? exceeded : notExceeded
        })
      })
    )

  // The whole batch in plain code (one pool transfer, then the inserts in order): what
  // `Effect.forEach(writes, (w) => Effect.either(write(...)))` does, without the per-block cost,
  // and on the caller's stack: nothing in it waits, so no fiber per batch either.
  const unsafeWriteMany = (handle: TorrentHandle, writes: ReadonlyArray<BlockWrite>): WrittenMany => {
    const t = engine.lookup(handle, "write")
    if (t instanceof DiskIoError) {
      for (const w of writes) if (!w.block.released) w.block.release()
      return { exceeded: false, failures: writes.map((_, index) => ({ index, error: t })) }
    }
    const failures: Array<{ index: number; error: DiskIoError }> = []
    const accepted: Array<BufferPool.Block> = []
    const sizes: Array<number> = []
    for (let i = 0; i < writes.length; i++) {
      const w = writes[i]!
      const expected = check(t, w.piece, w.offset, w.block, w.length)
      if (typeof expected === "number") {
        accepted.push(w.block)
        sizes.push(expected)
      } else {
        failures.push({ index: i, error: refused(w.block, expected) })
        sizes.push(-1)
      }
    }
    if (accepted.length === 0) return { exceeded: false, failures }
    pool.unsafeTransfer(accepted, engine.holdScope)
    for (let i = 0; i < writes.length; i++) {
      const size = sizes[i]!
      if (size < 0) continue
      const w = writes[i]!
      store.insert(store.piece(t, w.piece), w.offset, size, w.block)
    }
    return { exceeded: afterInsert(), failures }
  }

  const writeMany = (handle: TorrentHandle, writes: ReadonlyArray<BlockWrite>): Effect.Effect<WrittenMany> =>
    Effect.sync(() => unsafeWriteMany(handle, writes))

  return { write, writeMany, unsafeWriteMany, awaitWritable }
}

/**
 * Starts the aio writers and the timer that sends held-back writes of pieces nobody waits for (a
 * peer went away mid-piece), in `scope`. A writer is plain code driven by callbacks (a piece
 * handed to it, an io permit granted, a storage write done). A file target's write has a
 * callback form (`Storage.Write.unsafe`), so a batch needs no Effect at all; another storage's
 * write runs in a fiber of its own. No long-lived fiber steps through a loop of Effect operations
 * per piece. Nothing interrupts a storage write; closing the engine waits
 * until every write is out of the store buffer, those in flight included.
 *
 * @internal
 */
export const startWriters = (engine: Engine, scope: Scope.Scope): Effect.Effect<void> =>
  Effect.gen(function* () {
    const { io, store } = engine
    const bs = engine.blockSize
    const runtime = yield* Effect.runtime<never>()
    const runWrite = Runtime.runCallback(runtime)

    const bytesOf = (entry: Entry) =>
      entry.length === bs ? entry.block.bytes : entry.block.bytes.subarray(0, entry.length)

    const writer = () => {
      let piece: PieceState | undefined
      let runs: Array<Array<Entry>> = []
      let at = 0

      // With the io permit held: this piece's batch, run by run, then the next ready piece. A
      // storage write that completes at once (memory storage) continues the loop, not the stack.
      const step = (): void => {
        for (;;) {
          const current = piece!
          if (at === runs.length) {
            io.release()
            store.batchDone(current)
            piece = store.takeReady()
            if (piece === undefined) return void store.idle.push(wake)
            if (!io.tryTake()) return void (io.enqueue().wake = start)
            select()
            continue
          }
          const run = runs[at++]!
          const storage = current.torrent.storage
          let inline = true
          let doneInline = false
          const onExit = (exit: Exit.Exit<void, unknown>) => {
            store.complete(run, exit._tag === "Success" ? undefined : Cause.squash(exit.cause))
            if (inline) doneInline = true
            else step()
          }
          // A file target's callback write needs no fiber; any other storage's write runs in one.
          const unsafe = storage.write.unsafe
          if (unsafe !== undefined)
            callUnsafe(unsafe, current.index, run[0]!.offset, run.map(bytesOf), onExit)
          else
            runWrite(
              Effect.suspend(() => storage.write(current.index, run[0]!.offset, run.map(bytesOf))),
              { onExit }
            )
          inline = false
          if (!doneInline) return
        }
      }
      const select = () => {
        const batch = store.selectBatch(piece!)
        runs = batch.length === 0 ? [] : store.runs(batch)
        at = 0
      }
      const start = () => {
        select()
        step()
      }
      const begin = () => {
        if (io.tryTake()) start()
        else io.enqueue().wake = start
      }
      // Handed a piece by the store buffer, from inside an insert: the batch starts once the
      // caller's inserts are done, as a woken fiber would.
      const wake = (p: PieceState) => {
        piece = p
        queueMicrotask(begin)
      }
      store.idle.push(wake)
    }

    for (let i = 0; i < engine.config.aioThreads; i++) writer()
    // On Effect's Clock, so tests drive it with TestClock.
    yield* Effect.sleep(Duration.times(engine.config.writeDelay, 0.5)).pipe(
      Effect.zipRight(Effect.sync(() => store.urgeStale())),
      Effect.forever,
      Effect.forkIn(scope)
    )
  })
