/**
 * Tracker clients: HTTP(S) announces (BEP 3, BEP 23 compact peers, BEP 7 `peers6`), UDP announces
 * (BEP 15), scrape, and an `Announcer` that keeps a torrent announced to its announce-list tiers
 * (BEP 12) from a fiber: `started`, then every interval, `completed` when told, `stopped` when its
 * scope closes.
 *
 * @since 0.1.0
 */
import * as Context from "effect/Context"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Either from "effect/Either"
import * as Layer from "effect/Layer"
import type * as Scope from "effect/Scope"
import * as internalHttp from "./internal/httpTracker.js"
import type { AnnounceRequest, AnnounceResponse, PeerAddress, ScrapeEntry } from "./internal/trackerModel.js"
import { TrackerError } from "./internal/trackerModel.js"
import { UdpClient } from "./internal/udpTracker.js"
import type { Announcer, AnnouncerOptions } from "./internal/announcer.js"
import { makeAnnouncer } from "./internal/announcer.js"
import { percentEncode } from "./internal/urlCodec.js"

export {
  /**
   * @since 0.1.0
   * @category errors
   */
  TrackerError
} from "./internal/trackerModel.js"

export type {
  /**
   * @since 0.1.0
   * @category models
   */
  AnnounceEvent,
  /**
   * @since 0.1.0
   * @category models
   */
  AnnounceRequest,
  /**
   * @since 0.1.0
   * @category models
   */
  AnnounceResponse,
  /**
   * @since 0.1.0
   * @category models
   */
  PeerAddress,
  /**
   * @since 0.1.0
   * @category models
   */
  ScrapeEntry,
  /**
   * @since 0.1.0
   * @category models
   */
  TrackerErrorReason
} from "./internal/trackerModel.js"

/**
 * @since 0.1.0
 * @category models
 */
export interface Options {
  /** Whole-request timeout of an HTTP announce or scrape. Default 30 s. */
  readonly httpTimeout?: Duration.DurationInput
  /** Largest HTTP response body accepted. Default 1 MiB. */
  readonly maxResponseBytes?: number
  /** Sent as User-Agent. Default "ezio/0.1.0". */
  readonly userAgent?: string
  /** The base of BEP 15's 15·2^n s UDP retransmission schedule. Default 15 s; tests use less. */
  readonly udpTimeout?: Duration.DurationInput
  /**
   * The largest n in 15·2^n: a UDP request is sent at most `udpMaxRetransmits + 1` times. BEP 15
   * allows 8 (an hour's wait); the default 2 gives up after 15 + 30 + 60 s, so the announcer moves
   * on to the next tracker.
   */
  readonly udpMaxRetransmits?: number
  /** Local address the UDP sockets bind to. Default: all interfaces. */
  readonly udpBindAddress?: string
}

/**
 * @since 0.1.0
 * @category models
 */
export interface TrackerService {
  /** One announce to the tracker at `url` (http, https or udp). */
  readonly announce: (url: string, request: AnnounceRequest) => Effect.Effect<AnnounceResponse, TrackerError>
  /**
   * Scrape counts for `infoHashes`, keyed by lower-case hex info-hash. HTTP trackers are scraped
   * at the conventional scrape URL (`…/announce` → `…/scrape`).
   */
  readonly scrape: (
    url: string,
    infoHashes: ReadonlyArray<Uint8Array>
  ) => Effect.Effect<ReadonlyMap<string, ScrapeEntry>, TrackerError>
}

/**
 * @since 0.1.0
 * @category tags
 */
export class Tracker extends Context.Tag("@ezio/peer/Tracker")<Tracker, TrackerService>() {}

const schemeOf = (url: string): string => {
  const colon = url.indexOf(":")
  return colon < 0 ? "" : url.slice(0, colon).toLowerCase()
}

/**
 * A tracker client. Its UDP sockets are made on first use and closed with the scope.
 *
 * @since 0.1.0
 * @category constructors
 */
export const make = (options: Options = {}): Effect.Effect<TrackerService, never, Scope.Scope> =>
  Effect.gen(function* () {
    const udp = yield* Effect.acquireRelease(
      Effect.sync(
        () =>
          new UdpClient({
            baseTimeoutMillis: Duration.toMillis(options.udpTimeout ?? "15 seconds"),
            maxRetransmits: options.udpMaxRetransmits ?? 2,
            ...(options.udpBindAddress === undefined ? {} : { bindAddress: options.udpBindAddress })
          })
      ),
      (client) => Effect.sync(() => client.close())
    )
    const http: internalHttp.HttpOptions = {
      timeoutMillis: Duration.toMillis(options.httpTimeout ?? "30 seconds"),
      maxBytes: options.maxResponseBytes ?? 1024 * 1024,
      userAgent: options.userAgent ?? "ezio/0.1.0"
    }
    const unsupported = (url: string) =>
      Effect.fail(new TrackerError({ reason: "Unsupported", url, detail: `scheme "${schemeOf(url)}"` }))

    const announce = (url: string, request: AnnounceRequest): Effect.Effect<AnnounceResponse, TrackerError> =>
      announceBy(url, request).pipe(
        Effect.tap((response) => Effect.annotateCurrentSpan("peers", response.peers.length)),
        Effect.withSpan("ezio.tracker.announce", {
          attributes: {
            url,
            event: request.event ?? "none",
            infoHash: hex(request.infoHash),
            left: request.left
          }
        })
      )

    const announceBy = (
      url: string,
      request: AnnounceRequest
    ): Effect.Effect<AnnounceResponse, TrackerError> => {
      switch (schemeOf(url)) {
        case "http":
        case "https":
          return Effect.flatMap(
            internalHttp.httpGet(internalHttp.announceUrl(url, request), url, http),
            (body) => internalHttp.parseAnnounceResponse(url, body)
          )
        case "udp":
          return udp.announce(url, request)
        default:
          return unsupported(url)
      }
    }

    const scrape = (
      url: string,
      infoHashes: ReadonlyArray<Uint8Array>
    ): Effect.Effect<ReadonlyMap<string, ScrapeEntry>, TrackerError> => {
      switch (schemeOf(url)) {
        case "http":
        case "https": {
          const base = internalHttp.scrapeUrlOf(url)
          if (base === undefined) {
            return Effect.fail(
              new TrackerError({
                reason: "Unsupported",
                url,
                detail: "the announce URL does not support scrape"
              })
            )
          }
          return Effect.flatMap(
            internalHttp.httpGet(internalHttp.scrapeUrl(base, infoHashes), url, http),
            (body) => internalHttp.parseScrapeResponse(url, body)
          )
        }
        case "udp":
          return Effect.map(
            udp.scrape(url, infoHashes),
            (entries) => new Map(entries.map((entry, i) => [hex(infoHashes[i]!), entry]))
          )
        default:
          return unsupported(url)
      }
    }

    return Tracker.of({ announce, scrape })
  })

/**
 * @since 0.1.0
 * @category layers
 */
export const layer = (options: Options = {}): Layer.Layer<Tracker> => Layer.scoped(Tracker, make(options))

const hex = (bytes: Uint8Array): string => Buffer.from(bytes).toString("hex")

/**
 * One announce through the `Tracker` in context.
 *
 * @since 0.1.0
 * @category accessors
 */
export const announce = (
  url: string,
  request: AnnounceRequest
): Effect.Effect<AnnounceResponse, TrackerError, Tracker> =>
  Effect.flatMap(Tracker, (t) => t.announce(url, request))

/**
 * A scrape through the `Tracker` in context.
 *
 * @since 0.1.0
 * @category accessors
 */
export const scrape = (
  url: string,
  infoHashes: ReadonlyArray<Uint8Array>
): Effect.Effect<ReadonlyMap<string, ScrapeEntry>, TrackerError, Tracker> =>
  Effect.flatMap(Tracker, (t) => t.scrape(url, infoHashes))

// ---------------------------------------------------------------------------------------------
// pure helpers
// ---------------------------------------------------------------------------------------------

/**
 * The HTTP announce URL for `request` at `url`: info_hash and peer_id percent-encoded byte by
 * byte, `&`-appended when `url` already has a query string.
 *
 * @since 0.1.0
 * @category encoders
 */
export const announceUrl: (url: string, request: AnnounceRequest) => string = internalHttp.announceUrl

/**
 * Percent-encodes raw bytes (RFC 3986 unreserved bytes stay as they are).
 *
 * @since 0.1.0
 * @category encoders
 */
export const percentEncodeBytes: (bytes: Uint8Array) => string = percentEncode

/**
 * Parses a bencoded HTTP announce response.
 *
 * @since 0.1.0
 * @category decoders
 */
export const parseAnnounceResponse: (
  url: string,
  body: Uint8Array
) => Either.Either<AnnounceResponse, TrackerError> = internalHttp.parseAnnounceResponse

/**
 * BEP 23 compact peers (6 bytes each for IPv4, 18 for IPv6).
 *
 * @since 0.1.0
 * @category decoders
 */
export const decodeCompactPeers: (bytes: Uint8Array, family: 4 | 6) => Array<PeerAddress> =
  internalHttp.decodeCompactPeers

/**
 * BEP 23 compact encoding of the peers of one family (others are skipped).
 *
 * @since 0.1.0
 * @category encoders
 */
export const encodeCompactPeers: (peers: ReadonlyArray<PeerAddress>, family: 4 | 6) => Uint8Array =
  internalHttp.encodeCompactPeers

export {
  /**
   * Starts announcing in a fiber of the current scope (see the module's doc).
   *
   * @since 0.1.0
   * @category constructors
   */
  makeAnnouncer,
  /**
   * Moves a URL to the front of its tier (BEP 12, after it answered). Mutates the tiers.
   *
   * @since 0.1.0
   * @category mutations
   */
  promote,
  /**
   * Shuffles each tier once (BEP 12). Returns fresh arrays.
   *
   * @since 0.1.0
   * @category constructors
   */
  shuffleTiers
} from "./internal/announcer.js"

export type {
  /**
   * @since 0.1.0
   * @category models
   */
  Announcer,
  /**
   * @since 0.1.0
   * @category models
   */
  AnnouncerOptions,
  /**
   * @since 0.1.0
   * @category models
   */
  AnnouncerState,
  /**
   * @since 0.1.0
   * @category models
   */
  Progress
} from "./internal/announcer.js"

/**
 * `makeAnnouncer` with the `Tracker` in context.
 *
 * @since 0.1.0
 * @category constructors
 */
export const startAnnouncer = (
  options: AnnouncerOptions
): Effect.Effect<Announcer, never, Tracker | Scope.Scope> =>
  Effect.flatMap(Tracker, (tracker) => makeAnnouncer(tracker, options))
