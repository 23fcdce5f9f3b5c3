// A magnet link in place of a .torrent path (BEP 9): the torrent's metadata comes from the peers
// (`x.pe` in the link, `--peer`) or from the peers its trackers (`tr`, `--tracker`) return, over a
// session that then keeps those connections for the download. A PXE-booted target needs only the
// link on its kernel command line.
import { Session } from "@ezio/peer"
import { Magnet, type Metainfo } from "@ezio/torrent"
import * as Console from "effect/Console"
import * as Effect from "effect/Effect"
import * as Either from "effect/Either"
import { emit } from "./common.js"
import { UsageError } from "./errors.js"

export const isMagnet = (torrent: string): boolean => torrent.startsWith("magnet:")

/** The link parsed, or a usage error naming what is wrong with it. */
export const parse = (torrent: string) =>
  Either.match(Magnet.parse(torrent), {
    onLeft: (error) => Effect.fail(new UsageError({ option: "torrent", detail: error.message })),
    onRight: (magnet) => Effect.succeed(magnet)
  })

/** The `x.pe` peers of a link, as `--peer` takes them (unparsable ones are skipped). */
export const peersOf = (magnet: Magnet.Magnet): Array<{ host: string; port: number }> =>
  magnet.peers.flatMap((text) => {
    const at = text.lastIndexOf(":")
    const port = Number(text.slice(at + 1))
    return at > 0 && Number.isInteger(port) && port > 0 && port <= 65535
      ? [{ host: text.slice(0, at).replace(/^\[|\]$/g, ""), port }]
      : []
  })

export interface Fetched {
  readonly meta: Metainfo.Metainfo
  readonly session: Session.SessionService
  /** The link's `x.pe` peers, for the swarm to dial again if a connection was lost meanwhile. */
  readonly peers: ReadonlyArray<{ readonly host: string; readonly port: number }>
}

/**
 * For a magnet link: a session on `bind:port` (or `session`, for several torrents on one) and the
 * torrent's metadata fetched through it; `undefined` for a .torrent path. The session's `add` of
 * the torrent keeps the connections.
 */
export const fetch = (args: {
  readonly torrent: string
  readonly session?: Session.SessionService
  readonly bind: string
  readonly port: number
  readonly trackers: ReadonlyArray<string>
  readonly peers: ReadonlyArray<{ readonly host: string; readonly port: number }>
  readonly json: boolean
  readonly encryption?: Session.Encryption
}) =>
  Effect.gen(function* () {
    if (!isMagnet(args.torrent)) return undefined
    const magnet = yield* parse(args.torrent)
    const infoHash = magnet.infoHash === undefined ? "?" : Buffer.from(magnet.infoHash).toString("hex")
    const session =
      args.session ??
      (yield* Session.make({
        host: args.bind,
        port: args.port,
        ...(args.encryption !== undefined ? { encryption: args.encryption } : {})
      }))
    const peers = peersOf(magnet)
    if (peers.length + args.peers.length + magnet.trackers.length + args.trackers.length === 0)
      yield* Console.error(
        "warning: the magnet link has no peers (x.pe) and no trackers (tr), nor did --peer or --tracker give any: waiting for peers to dial in"
      )
    yield* emit(
      args.json,
      { event: "metadata", infoHash, listen: `${args.bind}:${session.port}` },
      `fetching the metadata of ${infoHash} from peers (BEP 9) on ${args.bind}:${session.port}`
    )
    const meta = yield* session
      .fetchMetadata({
        magnet,
        peers: args.peers,
        ...(args.trackers.length > 0 ? { trackers: [[...args.trackers]] } : {})
      })
      .pipe(
        Effect.catchTag(
          "MetadataError",
          (error): Effect.Effect<never, UsageError | Metainfo.MetainfoError> =>
            error.reason === "Invalid" && error.cause !== undefined
              ? Effect.fail(error.cause as Metainfo.MetainfoError)
              : Effect.fail(new UsageError({ option: "torrent", detail: error.message }))
        )
      )
    return { meta, session, peers } satisfies Fetched
  })
