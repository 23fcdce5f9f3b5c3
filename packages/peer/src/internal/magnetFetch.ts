// The Effect side of a magnet link's metadata fetch (BEP 9): a `MetadataFetcher` registered in
// the session under the info-hash (so incoming peers reach it, and `Session.add` adopts its
// connections), ticked once a second, fed the magnet's peers and its trackers' peers.
import { Magnet, Metainfo } from "@ezio/torrent"
import * as Data from "effect/Data"
import * as Deferred from "effect/Deferred"
import * as Effect from "effect/Effect"
import * as Either from "effect/Either"
import * as ExecutionStrategy from "effect/ExecutionStrategy"
import * as Exit from "effect/Exit"
import * as Queue from "effect/Queue"
import * as Runtime from "effect/Runtime"
import * as Scope from "effect/Scope"
import * as Tracker from "../Tracker.js"
import * as Wire from "../Wire.js"
import { MetadataFetcher } from "./metadata.js"

/**
 * A magnet link's metadata cannot be fetched or used: the link has no v1 info-hash, the torrent is
 * already in the session, or the info dictionary (which matched the info-hash) is not a valid
 * torrent.
 *
 * @since 0.1.0
 * @category errors
 */
export class MetadataError extends Data.TaggedError("MetadataError")<{
  readonly reason: "NoV1InfoHash" | "Duplicate" | "Invalid"
  /** The info-hash in hex, or the link itself when it has no v1 info-hash. */
  readonly torrent: string
  readonly detail: string
  readonly cause?: unknown
}> {
  override get message(): string {
    return `magnet ${this.torrent}: ${this.detail}`
  }
}

/**
 * Where to find the peers of a magnet link besides its `x.pe` addresses and `tr` trackers.
 *
 * @since 0.1.0
 * @category models
 */
export interface FetchOptions {
  readonly magnet: Magnet.Magnet
  /** More peers to dial. */
  readonly peers?: ReadonlyArray<{ readonly host: string; readonly port: number }>
  /** More tracker tiers to announce to while fetching (each `tr` is a tier of its own). */
  readonly trackers?: ReadonlyArray<ReadonlyArray<string>>
  /** The tracker client to announce with; by default one made for the fetch. */
  readonly tracker?: Tracker.TrackerService
  /** Largest info dictionary accepted, in bytes. Default 32 MiB. */
  readonly maxMetadataSize?: number
}

export interface FetchContext {
  readonly fetchers: Map<string, MetadataFetcher>
  readonly has: (hex: string) => boolean
  readonly peerId: Uint8Array
  readonly port: number
}

/** Unknown until the metadata arrives; not 0, so trackers count us as a leecher. */
const LEFT_UNKNOWN = Wire.METADATA_PIECE

const parsePeer = (text: string): { host: string; port: number } | undefined => {
  const at = text.lastIndexOf(":")
  const port = Number(text.slice(at + 1))
  if (at <= 0 || !Number.isInteger(port) || port <= 0 || port > 65535) return undefined
  return { host: text.slice(0, at).replace(/^\[|\]$/g, ""), port }
}

/**
 * Fetches and verifies the metadata, then wraps it with the magnet's trackers. The connections
 * stay open in the session (in the current scope) until `Session.add` of the torrent adopts them.
 */
export const fetch = (
  context: FetchContext,
  options: FetchOptions
): Effect.Effect<Metainfo.Metainfo, MetadataError, Scope.Scope> =>
  Effect.gen(function* () {
    const { magnet } = options
    const infoHash = magnet.infoHash
    if (infoHash === undefined)
      return yield* new MetadataError({
        reason: "NoV1InfoHash",
        torrent: Magnet.format(magnet),
        detail: "the link has no urn:btih (v1) info-hash; ezio fetches v1 metadata only"
      })
    const hex = Buffer.from(infoHash).toString("hex")
    if (context.has(hex) || context.fetchers.has(hex))
      return yield* new MetadataError({
        reason: "Duplicate",
        torrent: hex,
        detail: "the torrent is already in the session"
      })
    const clock = yield* Effect.clock
    const runtime = yield* Effect.runtime<never>()
    const done = yield* Deferred.make<Uint8Array>()
    const fetcher = new MetadataFetcher({
      infoHash,
      peerId: context.peerId,
      listenPort: context.port,
      maxSize: options.maxMetadataSize ?? 32 * 1024 * 1024,
      now: () => clock.unsafeCurrentTimeMillis(),
      onMetadata: (bytes) => Deferred.unsafeDone(done, Exit.succeed(bytes)),
      log: (message) => Runtime.runFork(runtime)(Effect.logDebug(`magnet ${hex}: ${message}`))
    })
    context.fetchers.set(hex, fetcher)
    yield* Effect.addFinalizer(() =>
      Effect.sync(() => {
        if (context.fetchers.get(hex) === fetcher) context.fetchers.delete(hex)
        fetcher.close()
      })
    )
    yield* Effect.forkScoped(
      Effect.repeat(
        Effect.zipRight(
          Effect.sleep("1 second"),
          Effect.sync(() => fetcher.tick())
        ),
        { while: () => !fetcher.closed }
      )
    )
    for (const text of magnet.peers) {
      const peer = parsePeer(text)
      if (peer !== undefined) fetcher.connect(peer.host, peer.port)
    }
    for (const peer of options.peers ?? []) fetcher.connect(peer.host, peer.port)

    // The trackers only while fetching: `Session.add`'s caller announces the torrent from then on.
    const tiers = [...magnet.trackers.map((url) => [url]), ...(options.trackers ?? [])]
    if (tiers.length > 0) {
      const scope = yield* Effect.scope
      const announcing = yield* Scope.fork(scope, ExecutionStrategy.sequential)
      yield* Effect.gen(function* () {
        const client = options.tracker ?? (yield* Tracker.make())
        const announcer = yield* Tracker.makeAnnouncer(client, {
          tiers,
          infoHash,
          peerId: context.peerId,
          port: context.port,
          minInterval: "5 seconds",
          retryDelay: "5 seconds",
          progress: Effect.succeed({ uploaded: 0, downloaded: 0, left: LEFT_UNKNOWN })
        })
        yield* Effect.forkScoped(
          Effect.forever(
            Effect.flatMap(Queue.take(announcer.peers), (peer) =>
              Effect.sync(() => fetcher.connect(peer.ip, peer.port))
            )
          )
        )
      }).pipe(Scope.extend(announcing))
      // Sending `stopped` must not hold the swarm up.
      yield* Effect.forkIn(Effect.zipRight(Deferred.await(done), Scope.close(announcing, Exit.void)), scope)
    }

    const infoBytes = yield* Deferred.await(done)
    const metainfo = Metainfo.fromInfo(infoBytes, magnet.trackers)
    if (Either.isLeft(metainfo)) {
      fetcher.close()
      return yield* new MetadataError({
        reason: "Invalid",
        torrent: hex,
        detail: `the peers' metadata matches the info-hash but is not a usable torrent: ${metainfo.left.detail}`,
        cause: metainfo.left
      })
    }
    return metainfo.right
  })
