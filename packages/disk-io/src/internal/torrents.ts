/**
 * Torrent-wide jobs: adding and removing torrents, flushing their writes, syncing and releasing
 * their files.
 *
 * @internal
 */
import type { Storage } from "@ezio/storage"
import * as Effect from "effect/Effect"
import { DiskIoError, type Operation } from "../DiskIoError.js"
import { type Engine, errorOf, writeFailed } from "./engine.js"
import type { TorrentHandle } from "./models.js"
import { type PieceState, TorrentState } from "./storeBuffer.js"

/** @internal */
export const makeTorrents = (engine: Engine) => {
  const { store } = engine

  const addTorrent = (
    storage: Storage.StorageService,
    options: { readonly name?: string } = {}
  ): Effect.Effect<TorrentHandle, DiskIoError> =>
    Effect.suspend(() => {
      const name = options.name ?? storage.layout.name
      const id = ++engine.nextTorrent
      if (engine.closed) return Effect.fail(errorOf({ id, name }, "Closed", "addTorrent"))
      const torrent = new TorrentState(engine, id, name, storage, storage.layout)
      engine.torrents.set(id, torrent)
      return Effect.succeed(torrent)
    })

  // Every write issued before it on storage; fails with the earliest write error of the torrent.
  const flushTorrent = (t: TorrentState, operation: Operation): Effect.Effect<void, DiskIoError> =>
    Effect.suspend(() => {
      const seq = store.seq
      const pending: Array<PieceState> = []
      for (const piece of t.pieces.values()) if (piece.lowest() <= seq) pending.push(piece)
      return Effect.zipRight(
        Effect.forEach(pending, (piece) => engine.waitWrites(piece, seq), { discard: true }),
        Effect.suspend(() => {
          let first: PieceState | undefined
          for (const piece of t.pieces.values()) {
            if (piece.error !== undefined && (first === undefined || piece.error.seq < first.error!.seq))
              first = piece
          }
          return first === undefined
            ? Effect.void
            : Effect.fail(writeFailed(t, operation, first.index, first.error!))
        })
      )
    })

  const releaseFilesOf = (t: TorrentState, operation: Operation) =>
    Effect.mapError(t.storage.releaseFiles, (cause) => errorOf(t, "Storage", operation, { cause }))

  const removeTorrent = (handle: TorrentHandle): Effect.Effect<void, DiskIoError> =>
    Effect.suspend(() => {
      const t = engine.lookup(handle, "removeTorrent")
      if (t instanceof DiskIoError) return Effect.fail(t)
      t.removed = true
      return Effect.gen(function* () {
        const flushed = yield* Effect.exit(flushTorrent(t, "removeTorrent"))
        yield* engine.drained(() => t.outstanding === 0)
        const released = yield* Effect.exit(releaseFilesOf(t, "removeTorrent"))
        engine.torrents.delete(t.id)
        for (const piece of t.pieces.values()) piece.error = undefined
        for (const piece of [...t.pieces.values()]) store.forget(piece)
        yield* flushed
        yield* released
      })
    })

  const stopTorrent = (handle: TorrentHandle): Effect.Effect<void, DiskIoError> =>
    Effect.suspend(() => {
      const t = engine.lookup(handle, "stopTorrent")
      if (t instanceof DiskIoError) return Effect.fail(t)
      return Effect.flatMap(Effect.exit(flushTorrent(t, "stopTorrent")), (flushed) =>
        Effect.zipRight(releaseFilesOf(t, "stopTorrent"), flushed)
      )
    })

  const releaseFiles = (handle: TorrentHandle): Effect.Effect<void, DiskIoError> =>
    Effect.suspend(() => {
      const t = engine.lookup(handle, "releaseFiles")
      return t instanceof DiskIoError ? Effect.fail(t) : releaseFilesOf(t, "releaseFiles")
    })

  const flush = (handle: TorrentHandle): Effect.Effect<void, DiskIoError> =>
    Effect.suspend(() => {
      const t = engine.lookup(handle, "flush")
      return t instanceof DiskIoError ? Effect.fail(t) : flushTorrent(t, "flush")
    })

  const storageSync = (t: TorrentState): Effect.Effect<void, DiskIoError> =>
    Effect.mapBoth(t.storage.sync, {
      onFailure: (cause) => errorOf(t, "Storage", "sync", { cause }),
      onSuccess: () => {
        engine.syncs++
      }
    })

  const sync = (handle: TorrentHandle): Effect.Effect<void, DiskIoError> =>
    Effect.suspend(() => {
      const t = engine.lookup(handle, "sync")
      if (t instanceof DiskIoError) return Effect.fail(t)
      return Effect.zipRight(flushTorrent(t, "sync"), storageSync(t))
    })

  // No flush: held-back writes stay held, so a piece still arriving is not written in part (its
  // hash would then read it back from storage instead of hashing it in the store buffer).
  const syncStored = (handle: TorrentHandle): Effect.Effect<void, DiskIoError> =>
    Effect.suspend(() => {
      const t = engine.lookup(handle, "sync")
      return t instanceof DiskIoError ? Effect.fail(t) : storageSync(t)
    })

  return { addTorrent, removeTorrent, stopTorrent, releaseFiles, flush, sync, syncStored }
}
