/**
 * A BitTorrent session: one listening socket and the swarms (torrents) it serves. Each swarm
 * seeds the pieces it has and downloads the rest from the same peers (every target of a deploy
 * seeds to the others while it downloads), through `DiskIo` and the one `BufferPool`.
 *
 * Per-block work (frame parsing, request bookkeeping, a corked write of a 13-byte header and the
 * pool block itself) is plain code on the event loop; disk work is one Effect per batch: a run of
 * contiguous requested blocks becomes one `DiskIo.readOwned`, the blocks received in one socket
 * read become one batch of `DiskIo.write`s. Sent blocks return to the pool in the socket's write
 * callbacks, with no copy.
 *
 * @since 0.1.0
 */
import * as NCrypto from "node:crypto"
import { DiskIo } from "@ezio/disk-io"
import { BufferPool } from "@ezio/pool"
import { Bitfield, type Storage } from "@ezio/storage"
import type { Metainfo } from "@ezio/torrent"
import * as Config from "effect/Config"
import type * as ConfigError from "effect/ConfigError"
import * as Context from "effect/Context"
import * as Data from "effect/Data"
import * as Deferred from "effect/Deferred"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as Option from "effect/Option"
import * as PubSub from "effect/PubSub"
import * as Queue from "effect/Queue"
import type * as Scope from "effect/Scope"
import * as Stream from "effect/Stream"
import * as Listener from "./internal/listener.js"
import * as MagnetFetch from "./internal/magnetFetch.js"
import * as PeriodicSync from "./internal/periodicSync.js"
import type { MetadataFetcher } from "./internal/metadata.js"
import type * as MseDial from "./internal/mseDial.js"
import { BLOCK } from "./internal/picker.js"
import * as SessionOptions from "./internal/sessionOptions.js"
import * as SwarmCore from "./internal/swarm.js"
import * as SwarmStatus from "./internal/swarmStatus.js"
import * as Upload from "./internal/upload.js"
import * as Tracker from "./Tracker.js"

/**
 * @since 0.1.0
 * @category errors
 */
export class SessionError extends Data.TaggedError("SessionError")<{
  readonly reason: "Listen" | "Duplicate"
  readonly detail: string
  readonly cause?: unknown
}> {
  override get message(): string {
    return this.detail
  }
}

/**
 * An option of `Session.make` or `session.add` out of its range: which one, its value, the rule.
 *
 * @since 0.1.0
 * @category errors
 */
export class InvalidSessionOptions extends Data.TaggedError("InvalidSessionOptions")<{
  readonly method: "make" | "add"
  readonly option: string
  readonly value: unknown
  readonly reason: string
}> {
  override get message(): string {
    return `Session.${this.method}: option ${this.option} = ${String(this.value)} ${this.reason}`
  }
}

/**
 * The BufferPool's blocks are not the 16 KiB a session needs: received blocks are written from
 * pool blocks one to one, so any other size would make every downloaded write unaligned.
 *
 * @since 0.1.0
 * @category errors
 */
export class IncompatiblePool extends Data.TaggedError("IncompatiblePool")<{
  readonly pool: string
  readonly blockSize: number
  readonly required: number
}> {
  override get message(): string {
    return `Session.make: the BufferPool "${this.pool}" has ${this.blockSize}-byte blocks; a session needs blockSize ${this.required}`
  }
}

export {
  /**
   * @since 0.1.0
   * @category errors
   */
  MetadataError
} from "./internal/magnetFetch.js"

/**
 * @since 0.1.0
 * @category models
 */
export interface Options {
  /** Address to listen on. Default "0.0.0.0". */
  readonly host?: string
  /** Port to listen on; 0 picks a free one. Default 6881. */
  readonly port?: number
  /** Accept incoming connections at all. Default true. */
  readonly listen?: boolean
  /** Our 20-byte peer id. Default: "-EZ0100-" and 12 random bytes. */
  readonly peerId?: Uint8Array
  /**
   * How connections we open start (MSE/PE, "protocol encryption"): `"plaintext"` (default), the
   * BitTorrent handshake every client accepts; `"prefer"`, MSE letting the peer choose plaintext
   * or RC4, and plaintext again if the peer does not answer MSE; `"require"`, MSE only, for peers
   * that refuse plaintext. Incoming connections are accepted plaintext or MSE whatever this says.
   */
  readonly encryption?: Encryption
}

/**
 * @since 0.1.0
 * @category models
 */
export type Encryption = MseDial.Encryption

/**
 * @since 0.1.0
 * @category models
 */
export interface SwarmOptions {
  readonly metainfo: Metainfo.Metainfo
  readonly storage: Storage.StorageService
  /** Pieces already verified on the target (from `Check.check`); default none. */
  readonly have?: Bitfield.Bitfield
  /**
   * Connections at most, incoming and outgoing. Default 200 (libtorrent's `connections_limit`).
   * Every peer a tracker, `connect` or PEX offers is dialled while fewer than four fifths of
   * this are connected; the last fifth is kept for peers that dial us, so a target that joins a
   * deploy of hundreds late still finds room. At the default a deploy of up to 160 targets is
   * fully meshed; past that each target keeps 160 random neighbours, which keeps the swarm in
   * one piece with every target two hops from every other.
   */
  readonly maxPeers?: number
  /** Exchange peers with peers that speak `ut_pex` (BEP 11). Default true, false for a private torrent. */
  readonly pex?: boolean
  /**
   * Requests a peer may queue with us (advertised as `reqq`); the excess is refused. Default 2000,
   * libtorrent's own `max_allowed_in_request_queue`: clients that size their pipeline by `reqq`
   * (transmission) are otherwise held to one queue-full per refill.
   */
  readonly requestQueue?: number
  /**
   * Requests we keep outstanding per peer when downloading, at most: each peer's queue follows
   * its measured rate (a second of it, at least 8 requests). Default 256 (4 MiB).
   */
  readonly downloadQueue?: number
  /** Bytes queued in a peer's socket before we stop reading for it. Default 4 MiB. */
  readonly sendBufferBytes?: number
  /**
   * Peers unchoked at once. Default: all of them (EZIO's choice for a LAN deploy). With a number,
   * slots rotate every 10 s to the peer waiting longest, plus one optimistic slot every 30 s.
   */
  readonly uploadSlots?: number
  /** Upload limit in bytes per second for the swarm; 0 for none. Default 0. */
  readonly uploadRateLimit?: number
  /** Ramp the upload rate up from `initialRate` over `period` (EZIO's --slow-start). */
  readonly slowStart?: { readonly initialRate: number; readonly period: Duration.DurationInput }
  /**
   * A swarm that starts with every piece sends no piece twice while some piece has not left it
   * yet. To ezio peers it refuses (BEP 6) a request for a piece a connected peer has or is
   * getting, and suggests pieces nobody has; afterwards too it refuses a piece a connected peer
   * has, unless asked for it again a few seconds later. Other clients are super-seeded (BEP 16):
   * told we have nothing, then offered unsent pieces two at a time, the next once the last is
   * seen at another peer; once every piece is out they are told of all and served as usual.
   * Default true.
   */
  readonly initialSeeding?: boolean
  /**
   * While downloading, what was verified is synced to stable storage (as at completion) once
   * `bytes` were verified since the last sync or `interval` after the first piece a sync would
   * cover, whichever comes first, so a power cut loses little. Default 256 MiB or 10 seconds.
   */
  readonly periodicSync?: { readonly bytes?: number; readonly interval?: Duration.DurationInput }
}

/**
 * Where a magnet link's peers are, besides its `x.pe` peers and `tr` trackers (BEP 9).
 *
 * @since 0.1.0
 * @category models
 */
export type FetchOptions = MagnetFetch.FetchOptions

/**
 * A swarm from a magnet link: the swarm's options, where to find peers, and how to open the
 * target once the metadata tells what it holds.
 *
 * @since 0.1.0
 * @category models
 */
export interface MagnetOptions<E, R>
  extends Omit<SwarmOptions, "metainfo" | "storage" | "have">, FetchOptions {
  readonly storageFor: (
    metainfo: Metainfo.Metainfo
  ) => Effect.Effect<{ readonly storage: Storage.StorageService; readonly have?: Bitfield.Bitfield }, E, R>
}

/**
 * @since 0.1.0
 * @category models
 */
export interface Status {
  readonly peers: number
  readonly uploaded: number
  readonly downloaded: number
  /** Bytes per second over the last second. */
  readonly uploadRate: number
  readonly downloadRate: number
  /** Bytes received that were not needed: end-game duplicates, blocks cancelled too late. */
  readonly redundant: number
  readonly have: number
  readonly pieces: number
  readonly complete: boolean
  readonly downloading: boolean
  readonly hashFailures: number
  /** Pieces peers passed on before verifying them and then retracted as bad (forgiven: no strike). */
  readonly retracted: number
  /** Peers banned for sending bad data ("address: why"): with no peers left, why nothing moves. */
  readonly banned: ReadonlyArray<string>
  readonly errors: ReadonlyArray<string>
  /** Connected peers that have every piece. */
  readonly seeds: number
  /** When we last sent a block to a peer (ms on the Clock); only incomplete peers ask for blocks. */
  readonly lastUploadAt: number | undefined
  /** The disk error that stopped the download (writing or hashing would fail again). */
  readonly failure?: string
  /** Pieces we lack that at least one connected peer has (0 with no peers: a stall's reason). */
  readonly missingAvailable: number
  /**
   * A swarm that started with every piece (initial seeding on): what left it until every piece
   * had left it whole once. `repeatedBeforeAllOut` counts bytes of pieces sent again before then.
   */
  readonly initialSeeding?: {
    /** Pieces sent whole at least once. */
    readonly piecesOut: number
    /** Payload bytes uploaded until every piece was out (all of them until then). */
    readonly uploadedBeforeAllOut: number
    readonly repeatedBeforeAllOut: number
    /** Block requests of ezio peers refused so far: the piece was with, or on its way to, another peer. */
    readonly refused: number
    /** Pieces offered one by one (BEP 16 super-seeding) to clients that are not ezio, so far. */
    readonly offered: number
  }
}

/**
 * @since 0.1.0
 * @category models
 */
export interface Swarm {
  readonly metainfo: Metainfo.Metainfo
  readonly disk: DiskIo.TorrentHandle
  /**
   * Adds a peer to the ones the swarm keeps connected: dialled now if there is room, again with
   * backoff (1 s doubling to 60 s) while it refuses or after it drops. Naming a known peer
   * again makes it due now.
   */
  readonly connect: (host: string, port: number) => Effect.Effect<void>
  readonly status: Effect.Effect<Status>
  readonly unsafeStatus: () => Status
  /** Waits until every piece is verified on the target and synced to stable storage (at once when seeding). */
  readonly complete: Effect.Effect<void>
  /**
   * Each piece verified after the stream starts, in order; ends when the torrent is complete or
   * the swarm stops (at once if it already has). Every subscriber sees every piece.
   */
  readonly pieces: Stream.Stream<number>
  /** Announces to trackers in a fiber of the current scope, and dials the peers they return. */
  readonly announce: (
    tracker: Tracker.TrackerService,
    options: Omit<Tracker.AnnouncerOptions, "infoHash" | "peerId" | "port" | "progress">
  ) => Effect.Effect<Tracker.Announcer, never, Scope.Scope>
}

/**
 * @since 0.1.0
 * @category models
 */
export interface SessionService {
  /** The port we listen on (0 with `listen: false`). */
  readonly port: number
  readonly peerId: Uint8Array
  /** Starts serving a torrent; it stops (peers closed, writes drained) when the scope closes. */
  readonly add: (
    options: SwarmOptions
  ) => Effect.Effect<Swarm, SessionError | InvalidSessionOptions | DiskIo.DiskIoError, Scope.Scope>
  /**
   * Fetches a magnet link's info dictionary from its peers (BEP 9 ut_metadata), verified against
   * its info-hash. The connections stay open, in the current scope, and `add` of that torrent
   * takes them over.
   */
  readonly fetchMetadata: (
    options: FetchOptions
  ) => Effect.Effect<Metainfo.Metainfo, MagnetFetch.MetadataError, Scope.Scope>
  /** `fetchMetadata`, then `storageFor` the torrent it describes, then `add`. */
  readonly addMagnet: <E, R>(
    options: MagnetOptions<E, R>
  ) => Effect.Effect<
    Swarm,
    SessionError | InvalidSessionOptions | DiskIo.DiskIoError | MagnetFetch.MetadataError | E,
    Scope.Scope | R
  >
}

/**
 * @since 0.1.0
 * @category tags
 */
export class Session extends Context.Tag("@ezio/peer/Session")<Session, SessionService>() {}

/**
 * A peer id in Azureus style: `-EZ0100-` and 12 random bytes.
 *
 * @since 0.1.0
 * @category constructors
 */
export const makePeerId = (): Uint8Array => {
  const id = new Uint8Array(20)
  id.set(Buffer.from("-EZ0100-"))
  id.set(NCrypto.randomBytes(12), 8)
  return id
}

const checkMake = (options: Options): InvalidSessionOptions | undefined => {
  const problem = SessionOptions.checkMake(options)
  return problem && new InvalidSessionOptions({ method: "make", ...problem })
}

const checkAdd = (options: SwarmOptions): InvalidSessionOptions | undefined => {
  const problem = SessionOptions.checkAdd(options)
  return problem && new InvalidSessionOptions({ method: "add", ...problem })
}

/**
 * @since 0.1.0
 * @category constructors
 */
export const make = (
  options: Options = {}
): Effect.Effect<
  SessionService,
  SessionError | InvalidSessionOptions | IncompatiblePool,
  Scope.Scope | BufferPool.BufferPool | DiskIo.DiskIo
> =>
  Effect.gen(function* () {
    const invalid = checkMake(options)
    if (invalid !== undefined) return yield* invalid
    const pool = yield* BufferPool.BufferPool
    if (pool.blockSize !== BLOCK)
      return yield* new IncompatiblePool({ pool: pool.name, blockSize: pool.blockSize, required: BLOCK })
    const disk = yield* DiskIo.DiskIo
    const peerId = options.peerId ?? makePeerId()
    const swarms = new Map<string, SwarmCore.SwarmCore>()
    // One budget for the uploads of every swarm: several torrents share the pool as one does.
    const uploads = Upload.makeBudget()
    // Magnet links whose metadata is being fetched, or fetched and waiting for `add`.
    const fetchers = new Map<string, MetadataFetcher>()

    let port = 0
    if (options.listen !== false) {
      const host = options.host ?? "0.0.0.0"
      const wanted = options.port ?? 6881
      port = yield* Listener.listen(host, wanted, { swarms, fetchers }).pipe(
        Effect.mapError(
          (cause) =>
            new SessionError({
              reason: "Listen",
              detail: `cannot listen on ${host}:${wanted}: ${cause.message}`,
              cause
            })
        )
      )
    }

    const add = (swarmOptions: SwarmOptions) =>
      Effect.gen(function* () {
        const invalid = checkAdd(swarmOptions)
        if (invalid !== undefined) return yield* invalid
        const metainfo = swarmOptions.metainfo
        const hex = metainfo.infoHashHex
        if (swarms.has(hex))
          return yield* new SessionError({
            reason: "Duplicate",
            detail: `torrent ${hex} is already in the session`
          })
        const handle = yield* Effect.acquireRelease(
          disk.addTorrent(swarmOptions.storage, { name: metainfo.name }),
          (handle) => Effect.ignoreLogged(disk.removeTorrent(handle))
        )
        const have = Bitfield.make(metainfo.pieceCount)
        if (swarmOptions.have !== undefined) Bitfield.assign(have, swarmOptions.have.bytes)
        const slowStart = swarmOptions.slowStart
        const maxPeers = swarmOptions.maxPeers ?? 200
        const core = yield* SwarmCore.make({
          metainfo,
          handle,
          disk,
          pool,
          peerId,
          listenPort: port,
          have,
          uploads,
          options: {
            maxPeers,
            dialLimit: Math.max(1, maxPeers - Math.floor(maxPeers / 5)),
            pex: swarmOptions.pex ?? !metainfo.private,
            requestQueue: swarmOptions.requestQueue ?? 2000,
            downloadQueue: swarmOptions.downloadQueue ?? 256,
            sendBufferBytes: swarmOptions.sendBufferBytes ?? 4 * 1024 * 1024,
            uploadSlots: swarmOptions.uploadSlots ?? Infinity,
            uploadRateLimit: swarmOptions.uploadRateLimit ?? 0,
            slowStart:
              slowStart === undefined
                ? undefined
                : { initialRate: slowStart.initialRate, periodMs: Duration.toMillis(slowStart.period) },
            initialSeeding: swarmOptions.initialSeeding ?? true,
            encryption: options.encryption ?? "plaintext",
            periodicSync: {
              bytes: swarmOptions.periodicSync?.bytes ?? PeriodicSync.defaults.bytes,
              intervalMs: Duration.toMillis(
                swarmOptions.periodicSync?.interval ?? PeriodicSync.defaults.intervalMs
              )
            }
          }
        })
        swarms.set(hex, core)
        yield* Effect.addFinalizer(() => Effect.sync(() => swarms.delete(hex)))
        const fetcher = fetchers.get(hex)
        if (fetcher !== undefined) {
          // The magnet's metadata fetch already talks to these peers: keep them.
          fetchers.delete(hex)
          for (const handoff of fetcher.detach()) {
            core.add(handoff.socket, handoff.outgoing)?.adopt(handoff.handshake, handoff.replay)
            handoff.socket.resume()
          }
        }

        // Rates over the last second, and keep-alives / dead or stuck peers every 5 s.
        const monitor = yield* SwarmStatus.monitor(core)
        const unsafeStatus = (): Status => monitor.status()

        const swarm: Swarm = {
          metainfo,
          disk: handle,
          connect: (host, peerPort) => Effect.sync(() => core.connect(host, peerPort)),
          status: Effect.sync(unsafeStatus),
          unsafeStatus,
          complete: Deferred.await(core.completed),
          pieces: Stream.unwrapScoped(
            Effect.map(PubSub.subscribe(core.pieces), (dequeue) =>
              core.picker.complete || core.closed
                ? Stream.empty
                : Stream.flattenTake(Stream.fromQueue(dequeue))
            )
          ),
          announce: (tracker, announceOptions) =>
            Effect.gen(function* () {
              const announcer = yield* Tracker.makeAnnouncer(tracker, {
                ...announceOptions,
                infoHash: metainfo.infoHash,
                peerId,
                port,
                progress: Effect.sync(() => {
                  let left = 0
                  for (let i = 0; i < metainfo.pieceCount; i++)
                    if (!core.picker.has(i)) left += core.picker.pieceSize(i)
                  return { uploaded: core.uploadedBytes, downloaded: core.downloadedBytes, left }
                })
              })
              yield* Effect.forkScoped(
                Effect.forever(
                  Effect.flatMap(Queue.take(announcer.peers), (peer) =>
                    Effect.sync(() => core.connect(peer.ip, peer.port, "tracker"))
                  )
                )
              )
              // Tell the trackers when the download completes.
              yield* Effect.forkScoped(Effect.zipRight(Deferred.await(core.completed), announcer.completed))
              return announcer
            })
        }
        return swarm
      }).pipe(
        Effect.withSpan("ezio.session.add", {
          attributes: {
            torrent: swarmOptions.metainfo.name,
            infoHash: swarmOptions.metainfo.infoHashHex,
            pieces: swarmOptions.metainfo.pieceCount,
            have: swarmOptions.have === undefined ? 0 : Bitfield.count(swarmOptions.have)
          }
        })
      )

    const fetchMetadata = (fetchOptions: FetchOptions) =>
      MagnetFetch.fetch({ fetchers, has: (hex) => swarms.has(hex), peerId, port }, fetchOptions).pipe(
        Effect.tap((metainfo) =>
          Effect.annotateCurrentSpan({ torrent: metainfo.name, pieces: metainfo.pieceCount })
        ),
        Effect.withSpan("ezio.session.fetchMetadata", {
          attributes: {
            ...(fetchOptions.magnet.infoHash === undefined
              ? {}
              : { infoHash: Buffer.from(fetchOptions.magnet.infoHash).toString("hex") }),
            peers: fetchOptions.magnet.peers.length + (fetchOptions.peers?.length ?? 0)
          }
        })
      )

    const addMagnet = <E, R>({ storageFor, ...magnetOptions }: MagnetOptions<E, R>) =>
      Effect.gen(function* () {
        const metainfo = yield* fetchMetadata(magnetOptions)
        const target = yield* storageFor(metainfo)
        return yield* add({ ...magnetOptions, metainfo, ...target })
      })

    return { port, peerId, add, fetchMetadata, addMagnet } satisfies SessionService
  })

/**
 * @since 0.1.0
 * @category layers
 */
export const layer = (
  options: Options = {}
): Layer.Layer<
  Session,
  SessionError | InvalidSessionOptions | IncompatiblePool,
  BufferPool.BufferPool | DiskIo.DiskIo
> => Layer.scoped(Session, make(options))

/**
 * Reads `Options` from Effect `Config` under the keys `host`, `port` and `listen` (the peer id is
 * always generated); absent keys take the defaults. `Config.nested(config, "session")` reads
 * `SESSION_PORT` through `ConfigProvider.fromEnv().pipe(ConfigProvider.constantCase)`.
 *
 * @since 0.1.0
 * @category config
 */
export const config: Config.Config<Options> = Config.all({
  host: Config.option(Config.string("host")),
  port: Config.option(Config.integer("port")),
  listen: Config.option(Config.boolean("listen"))
}).pipe(
  Config.map(({ host, listen, port }) => ({
    ...(Option.isSome(host) ? { host: host.value } : {}),
    ...(Option.isSome(port) ? { port: port.value } : {}),
    ...(Option.isSome(listen) ? { listen: listen.value } : {})
  }))
)

/**
 * The session from `Config` (see `config`); by default the keys are nested under `session`.
 *
 * @since 0.1.0
 * @category layers
 */
export const layerConfig = (
  options: Config.Config<Options> = Config.nested(config, "session")
): Layer.Layer<
  Session,
  SessionError | InvalidSessionOptions | IncompatiblePool | ConfigError.ConfigError,
  BufferPool.BufferPool | DiskIo.DiskIo
> => Layer.scoped(Session, Effect.flatMap(options, make))
