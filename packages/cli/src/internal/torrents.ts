// The torrent/target pairs of one `seed` or `download` (a disk is one torrent per partition, as in
// Clonezilla): each torrent read, or for a magnet link its metadata fetched over the one session
// they all share; then each target opened and checked against its piece hashes.
import * as NPath from "node:path"
import type { Session } from "@ezio/peer"
import { Bitfield, type Storage } from "@ezio/storage"
import type { Metainfo } from "@ezio/torrent"
import * as Console from "effect/Console"
import * as Effect from "effect/Effect"
import { check, readTorrent } from "./common.js"
import { UsageError } from "./errors.js"
import * as Magnet from "./magnet.js"
import * as Target from "./target.js"

/** One torrent (a .torrent path or a magnet link) and where its data lives. */
export interface Pair {
  readonly torrent: string
  readonly data: string
}

type Peer = { readonly host: string; readonly port: number }

/** A pair whose torrent is known. */
export interface Resolved extends Pair {
  readonly meta: Metainfo.Metainfo
  /** A magnet link's `x.pe` peers, dialled again by its swarm. */
  readonly peers: ReadonlyArray<Peer>
}

/** A pair ready to join its swarm: the target open, what it already holds known. */
export interface Opened extends Resolved {
  readonly storage: Storage.StorageService
  readonly have: Bitfield.Bitfield
}

/**
 * Every pair's metainfo. A magnet link's metadata comes over a session made for the first link
 * (so a single link behaves as it always did), which the others and then every swarm share.
 */
export const resolve = (
  pairs: ReadonlyArray<Pair>,
  args: {
    readonly bind: string
    readonly port: number
    readonly trackers: ReadonlyArray<string>
    readonly peers: ReadonlyArray<Peer>
    readonly json: boolean
    readonly encryption?: Session.Encryption
  }
) =>
  Effect.gen(function* () {
    let session: Session.SessionService | undefined
    const resolved: Array<Resolved> = []
    for (const pair of pairs) {
      const fetched = yield* Magnet.fetch({
        ...args,
        torrent: pair.torrent,
        ...(session === undefined ? {} : { session })
      })
      session = fetched?.session ?? session
      const meta = fetched?.meta ?? (yield* readTorrent(pair.torrent))
      resolved.push({ ...pair, meta, peers: fetched?.peers ?? [] })
    }
    yield* distinct(resolved)
    return { session, resolved }
  })

/** One swarm per torrent and one writer per target: the same torrent or target twice is a mistake. */
const distinct = (resolved: ReadonlyArray<Resolved>): Effect.Effect<void, UsageError> => {
  const hashes = new Map<string, string>()
  const targets = new Map<string, string>()
  for (const r of resolved) {
    const twice = hashes.get(r.meta.infoHashHex)
    if (twice !== undefined)
      return Effect.fail(
        new UsageError({
          option: "torrent",
          detail: `${r.torrent} is ${twice === r.torrent ? "given twice" : `the same torrent (${r.meta.infoHashHex}) as ${twice}`}; give each torrent once`
        })
      )
    hashes.set(r.meta.infoHashHex, r.torrent)
    const path = NPath.resolve(r.data)
    if (targets.has(path))
      return Effect.fail(
        new UsageError({
          option: "target",
          detail: `${r.data} is given for both ${targets.get(path)} and ${r.torrent}; each torrent needs its own`
        })
      )
    targets.set(path, r.torrent)
  }
  return Effect.void
}

/**
 * Opens each target and finds what it holds: nothing if this run created it, everything with
 * `trust` (seed --trust), otherwise what checks against the piece hashes.
 */
export const open = (
  resolved: ReadonlyArray<Resolved>,
  options: { readonly mode: "seed" | "download"; readonly trust: boolean; readonly json: boolean }
) =>
  Effect.forEach(resolved, (r) =>
    Effect.gen(function* () {
      const { meta } = r
      const target = yield* Target.open({
        metainfo: meta,
        data: r.data,
        mode: options.mode === "seed" ? "read" : "readwrite"
      })
      let have: Bitfield.Bitfield
      if (!target.existed) {
        // A target this run created holds nothing yet: checking it would only fail to read every piece.
        have = Bitfield.make(meta.pieceCount)
      } else if (options.trust) {
        have = Bitfield.make(meta.pieceCount)
        for (let i = 0; i < meta.pieceCount; i++) Bitfield.set(have, i)
      } else {
        have = yield* check(target.storage, meta, options.json)
        if (options.mode === "seed" && !Bitfield.isComplete(have))
          yield* Console.error(
            `warning: ${resolved.length > 1 ? `${r.data}: ` : ""}${meta.pieceCount - Bitfield.count(have)} of ${meta.pieceCount} pieces are missing or corrupt; seeding the rest`
          )
      }
      return { ...r, storage: target.storage, have } satisfies Opened
    })
  )
