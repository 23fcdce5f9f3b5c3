/**
 * Hashes, and `clearPiece` (what follows a failed hash). A hash runs after every earlier write of
 * its piece, reads the piece in chunks of pool blocks on the io gate and hashes them on the
 * hasher's threads; a piece still whole in the store buffer is hashed there, in place.
 *
 * @internal
 */
import type { BufferPool } from "@ezio/pool"
import { Hasher, Layout } from "@ezio/storage"
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
import * as Runtime from "effect/Runtime"
import { DiskIoError } from "../DiskIoError.js"
import { badPiece, type Engine, errorOf, Job, poolError, type Restore, writeFailed } from "./engine.js"
import { HashFence } from "./fence.js"
import { waitGate } from "./gate.js"
import type { Hashed, HashOptions, TorrentHandle } from "./models.js"
import { V2_BLOCK } from "./options.js"
import type { Entry, TorrentState } from "./storeBuffer.js"

/** @internal */
export const makeHashes = (engine: Engine, runtime: Runtime.Runtime<never>) => {
  const { hasher, hashGate, io, store } = engine
  const { chunkBlocks, chunkBytes } = engine.config
  const bs = engine.blockSize
  const fence = new HashFence()

  const failHash = (t: TorrentState, piece: number) => (cause: unknown) =>
    errorOf(t, "Hash", "hash", { piece, cause })

  // The blocks are pinned (they stay out of the pool even once written), so the hash needs no
  // blocks of its own and reads nothing back. It answers once the writes it saw are on storage:
  // a piece reported good is also written, or its write error is reported.
  const hashPinned = (
    job: Job,
    t: TorrentState,
    piece: number,
    v2: boolean,
    entries: ReadonlyArray<Entry>,
    restore: Restore
  ): Effect.Effect<Hashed, DiskIoError> => {
    const written = entries[0]!.piece
    const seq = store.seq
    return Effect.gen(function* () {
      if (!job.tryPermit(hashGate)) {
        yield* restore(waitGate(hashGate))
        job.holdPermit(hashGate)
      }
      job.start()
      const views = entries.map((e) =>
        e.length === bs ? e.block.bytes : e.block.bytes.subarray(0, e.length)
      )
      // Hot: the blocks were just written by this thread (a hasher may hash them here, see Hasher).
      const hashing = hasher.begin({ algorithm: "sha1", blockHashes: v2, blockSize: V2_BLOCK, hot: true })
      const result = yield* Effect.mapError(hashing.final(views), failHash(t, piece))
      engine.bytesHashed += Layout.pieceSize(t.layout, piece)
      // Hashed: the pins and the permit go back before waiting for storage.
      job.release()
      yield* restore(engine.waitWrites(written, seq))
      if (written.error !== undefined) return yield* Effect.fail(writeFailed(t, "hash", piece, written.error))
      return v2 ? { sha1: result.digest, blockHashes: [...result.blocks] } : { sha1: result.digest }
    })
  }

  const runHash = (
    job: Job,
    t: TorrentState,
    piece: number,
    v2: boolean,
    restore: Restore
  ): Effect.Effect<Hashed, DiskIoError> =>
    Effect.gen(function* () {
      if (!job.tryPermit(hashGate)) {
        yield* restore(waitGate(hashGate))
        job.holdPermit(hashGate)
      }
      const size = Layout.pieceSize(t.layout, piece)
      const count = Math.max(1, Math.min(chunkBlocks, Math.ceil(size / bs)))
      const blocks: ReadonlyArray<BufferPool.Block> =
        engine.tryTakeN(count, "hash") ??
        (yield* Effect.mapError(engine.takeBlocksSlow(count, "hash", restore), (error) =>
          poolError(t, "hash", piece, error)
        ))
      job.holdBlocks(blocks)
      job.start()
      // From here on, writes of this piece issued later wait: storage holds exactly what the
      // piece was when the hash got its resources, once the earlier writes are in.
      const reader = store.piece(t, piece)
      const readerSeq = store.seq
      job.enterReader(reader, readerSeq)
      yield* restore(engine.waitWrites(reader, readerSeq))
      if (reader.error !== undefined) return yield* Effect.fail(writeFailed(t, "hash", piece, reader.error))
      const hashing = hasher.begin({ algorithm: "sha1", blockHashes: v2, blockSize: V2_BLOCK })
      const leaves: Array<Uint8Array> = []
      let digest: Uint8Array | undefined
      let at = 0
      do {
        const n = Math.min(chunkBytes, size - at)
        const views = engine.viewsOf(blocks, n)
        if (!io.tryTake()) yield* restore(waitGate(io))
        yield* Effect.uninterruptible(t.storage.read(piece, at, views)).pipe(
          Effect.mapError((cause) => errorOf(t, "Storage", "hash", { piece, offset: at, length: n, cause })),
          Effect.ensuring(Effect.sync(() => io.release()))
        )
        at += n
        if (at >= size) {
          const result = yield* Effect.mapError(hashing.final(views), failHash(t, piece))
          digest = result.digest
          for (const leaf of result.blocks) leaves.push(leaf)
        } else {
          const partial = yield* Effect.mapError(hashing.update(views), failHash(t, piece))
          for (const leaf of partial) leaves.push(leaf)
        }
      } while (at < size)
      engine.bytesHashed += size
      return v2 ? { sha1: digest!, blockHashes: leaves } : { sha1: digest! }
    })

  const hash = (
    handle: TorrentHandle,
    piece: number,
    options: HashOptions = {}
  ): Effect.Effect<Hashed, DiskIoError> =>
    Effect.suspend(() => {
      const t = engine.lookup(handle, "hash")
      if (t instanceof DiskIoError) return Effect.fail(t)
      if (badPiece(t, piece)) return Effect.fail(errorOf(t, "OutOfRange", "hash", { piece }))
      const v2 = options.v2 === true
      const job = new Job(store, engine.jobs.hash)
      // First the piece's earlier writes, holding nothing (no permit, no blocks, no hold on
      // later writes) while they drain.
      const before = t.pieces.get(piece)
      const seq = store.seq
      const earlier =
        before !== undefined && before.lowest() <= seq ? engine.waitWrites(before, seq) : Effect.void
      const key = `${t.id}:${piece}`
      fence.enter(key)
      // A piece whose every block is still in the store buffer (just downloaded) is hashed from
      // there, in place; pinned inside the mask so an interruption cannot leave it pinned.
      return Effect.uninterruptibleMask((restore) =>
        Effect.suspend(() => {
          const pinned = store.pinWholePiece(t, piece)
          if (pinned !== undefined) {
            job.holdPins(pinned)
            return hashPinned(job, t, piece, v2, pinned, restore)
          }
          return Effect.zipRight(restore(earlier), runHash(job, t, piece, v2, restore))
        })
      ).pipe(
        Effect.onExit((exit) =>
          Effect.sync(() => {
            job.close(exit._tag === "Success")
            fence.leave(key)
          })
        )
      )
    })

  const runHashEffect = Runtime.runCallback(runtime)

  // `hashPinned` in plain code, driven by callbacks (a permit granted, the hasher's answer, the
  // writes on storage): a just-downloaded piece is hashed without a fiber. The engine's close
  // waits for these, as it does for the writes.
  const unsafeHashPinned = (
    job: Job,
    t: TorrentState,
    piece: number,
    v2: boolean,
    entries: ReadonlyArray<Entry>,
    done: (exit: Exit.Exit<Hashed, DiskIoError>) => void
  ): void => {
    const written = entries[0]!.piece
    const seq = store.seq
    const answered = (result: Hasher.Digest | Hasher.HashError) => {
      if (result instanceof Hasher.HashError) return done(Exit.fail(failHash(t, piece)(result)))
      engine.bytesHashed += Layout.pieceSize(t.layout, piece)
      // Hashed: the pins and the permit go back before waiting for storage.
      job.release()
      const stored = () =>
        done(
          written.error !== undefined
            ? Exit.fail(writeFailed(t, "hash", piece, written.error))
            : Exit.succeed(
                v2 ? { sha1: result.digest, blockHashes: [...result.blocks] } : { sha1: result.digest }
              )
        )
      if (written.lowest() > seq) return stored()
      store.urge(written)
      written.fence.waiters.push({ seq, wake: stored })
    }
    const go = () => {
      job.start()
      const views = entries.map((e) =>
        e.length === bs ? e.block.bytes : e.block.bytes.subarray(0, e.length)
      )
      hasher
        .begin({ algorithm: "sha1", blockHashes: v2, blockSize: V2_BLOCK, hot: true })
        .unsafeFinal(views, answered)
    }
    if (job.tryPermit(hashGate)) return go()
    hashGate.enqueue().wake = () => {
      job.holdPermit(hashGate)
      go()
    }
  }

  // `hash` for plain code: a piece whole in the store buffer goes through `unsafeHashPinned`,
  // anything else through `hash` in a fiber of its own.
  const unsafeHash = (
    handle: TorrentHandle,
    piece: number,
    options: HashOptions,
    onExit: (exit: Exit.Exit<Hashed, DiskIoError>) => void
  ): void => {
    const t = engine.lookup(handle, "hash")
    const pinned = t instanceof DiskIoError || badPiece(t, piece) ? undefined : store.pinWholePiece(t, piece)
    if (t instanceof DiskIoError || pinned === undefined)
      return void runHashEffect(hash(handle, piece, options), { onExit })
    const job = new Job(store, engine.jobs.hash)
    job.holdPins(pinned)
    const key = `${t.id}:${piece}`
    fence.enter(key)
    engine.callbackJobs++
    unsafeHashPinned(job, t, piece, options.v2 === true, pinned, (exit) => {
      job.close(Exit.isSuccess(exit))
      fence.leave(key)
      engine.callbackJobs--
      store.checkDrained()
      // Not on the stack of the writer or hasher callback that finished the job: whatever the
      // caller does next cannot stall the engine's own bookkeeping.
      queueMicrotask(() => onExit(exit))
    })
  }

  const clearPiece = (handle: TorrentHandle, piece: number): Effect.Effect<void, DiskIoError> =>
    Effect.suspend(() => {
      const t = engine.lookup(handle, "clearPiece")
      if (t instanceof DiskIoError) return Effect.fail(t)
      if (badPiece(t, piece)) return Effect.fail(errorOf(t, "OutOfRange", "clearPiece", { piece }))
      const key = `${t.id}:${piece}`
      // After the hashes in flight, then from the top: the torrent may be gone by then.
      if (fence.pending(key)) {
        return Effect.zipRight(
          Effect.async<void>((resume) => Effect.sync(fence.wait(key, () => resume(Effect.void)))),
          clearPiece(handle, piece)
        )
      }
      const state = t.pieces.get(piece)
      if (state === undefined) return Effect.void
      const seq = store.seq
      store.dropQueued(state)
      return Effect.map(engine.waitWrites(state, seq), () => {
        if (state.error !== undefined && state.error.seq <= seq) state.error = undefined
        store.forget(state)
      })
    })

  return { hash, unsafeHash, clearPiece }
}
