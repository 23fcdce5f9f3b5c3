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
import * as Fiber from "effect/Fiber"
import * as Layer from "effect/Layer"
import * as Option from "effect/Option"
import * as Queue from "effect/Queue"
import * as Ref from "effect/Ref"
import type * as Scope from "effect/Scope"
import * as internalHttp from "./internal/httpTracker.js"
import type {
  AnnounceEvent,
  AnnounceRequest,
  AnnounceResponse,
  PeerAddress,
  ScrapeEntry
} from "./internal/trackerModel.js"
import { TrackerError } from "./internal/trackerModel.js"
import { UdpClient } from "./internal/udpTracker.js"
import { shuffleInPlace } from "./internal/shuffle.js"
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

/**
 * Shuffles each tier once (BEP 12). Returns fresh arrays.
 *
 * @since 0.1.0
 * @category constructors
 */
export const shuffleTiers = (
  tiers: ReadonlyArray<ReadonlyArray<string>>,
  random: () => number = Math.random
): Array<Array<string>> => tiers.map((tier) => shuffleInPlace([...tier], random))

/**
 * Moves `url` to the front of its tier (BEP 12, after it answered). Mutates `tiers`.
 *
 * @since 0.1.0
 * @category mutations
 */
export const promote = (tiers: Array<Array<string>>, url: string): void => {
  for (const tier of tiers) {
    const i = tier.indexOf(url)
    if (i > 0) {
      tier.splice(i, 1)
      tier.unshift(url)
    }
    if (i >= 0) return
  }
}

// ---------------------------------------------------------------------------------------------
// the announcer
// ---------------------------------------------------------------------------------------------

/**
 * Transfer totals for the next announce.
 *
 * @since 0.1.0
 * @category models
 */
export interface Progress {
  readonly uploaded: number
  readonly downloaded: number
  readonly left: number
}

/**
 * @since 0.1.0
 * @category models
 */
export interface AnnouncerOptions {
  /** The announce-list (BEP 12); a single `announce` URL is one tier of one. */
  readonly tiers: ReadonlyArray<ReadonlyArray<string>>
  readonly infoHash: Uint8Array
  readonly peerId: Uint8Array
  readonly port: number
  /** Read before every announce. */
  readonly progress: Effect.Effect<Progress>
  /** Default 50. */
  readonly numwant?: number
  /** Default: random. */
  readonly key?: number
  readonly ip?: string
  /** Shuffle each tier once at start (BEP 12). Default true. */
  readonly shuffle?: boolean
  /** Floor for the interval between announces, whatever the tracker says. Default 10 s. */
  readonly minInterval?: Duration.DurationInput
  /**
   * First wait after every tracker failed; doubles per failure up to `maxRetryDelay`. Default
   * 1 s: a target started before its seeder's tracker is up joins as soon as it is.
   */
  readonly retryDelay?: Duration.DurationInput
  /** Default 30 min. */
  readonly maxRetryDelay?: Duration.DurationInput
  /**
   * Until a tracker has answered once, the first `rounds` failed rounds are retried after `delay`
   * each, without doubling; then `retryDelay` as usual. For targets started together with their
   * seeder, whose embedded tracker is not listening yet: a doubling wait would keep a target
   * idle for seconds after the tracker is up. Default: none.
   */
  readonly startRetry?: { readonly delay: Duration.DurationInput; readonly rounds: number }
  /** Until a tracker answered once, a request unanswered this long is sent again beside it (first wins). */
  readonly startHedge?: Duration.DurationInput
  /** How long the `stopped` announce may take when the scope closes. Default 5 s. */
  readonly stopTimeout?: Duration.DurationInput
  /** Peers queue bound; the oldest are dropped past it. Default 2000. */
  readonly peerQueueCapacity?: number
  /** Called with every successful response, from the announcer's fiber. */
  readonly onResponse?: (url: string, response: AnnounceResponse) => Effect.Effect<void>
  /** Called when every tracker failed one round, with the last error of each. */
  readonly onFailure?: (errors: ReadonlyArray<TrackerError>) => Effect.Effect<void>
}

/**
 * What the announcer knows.
 *
 * @since 0.1.0
 * @category models
 */
export interface AnnouncerState {
  /** The tracker that answered last, with its response. */
  readonly last: Option.Option<{ readonly url: string; readonly response: AnnounceResponse }>
  /** The event the next announce will carry. */
  readonly nextEvent: AnnounceEvent
  readonly announces: number
  readonly failures: number
  /** The tiers in their current order (shuffled, answering trackers promoted). */
  readonly tiers: ReadonlyArray<ReadonlyArray<string>>
}

/**
 * A running announcer.
 *
 * @since 0.1.0
 * @category models
 */
export interface Announcer {
  /** Every peer any tracker returned, in arrival order (duplicates across announces included). */
  readonly peers: Queue.Dequeue<PeerAddress>
  /** Announces `completed` now (once; a no-op if `started` never got through, as the tracker does not know us). */
  readonly completed: Effect.Effect<void>
  /** Announces now instead of waiting out the interval (trackers may refuse below their `min interval`). */
  readonly reannounce: Effect.Effect<void>
  /** Stops the loop and announces `stopped` (bounded by `stopTimeout`). Idempotent; also runs at scope close. */
  readonly stop: Effect.Effect<void>
  readonly state: Effect.Effect<AnnouncerState>
}

type Signal = "completed" | "reannounce"

/**
 * Starts announcing in a fiber of the current scope: `started` to the first tracker that answers
 * (tiers in order, trackers in tier order, the one that answered moved to the front of its tier),
 * then every interval (the tracker's `interval`, at least its `min interval` and `minInterval`).
 * When every tracker fails, retries with exponential backoff. `stopped` is sent when the scope
 * closes or on `stop`, to the tracker that answered last.
 *
 * @since 0.1.0
 * @category constructors
 */
export const makeAnnouncer = (
  tracker: TrackerService,
  options: AnnouncerOptions
): Effect.Effect<Announcer, never, Scope.Scope> =>
  Effect.gen(function* () {
    const tiers =
      options.shuffle === false ? options.tiers.map((tier) => [...tier]) : shuffleTiers(options.tiers)
    const key = options.key ?? (Math.random() * 0x100000000) >>> 0
    const minInterval = Duration.toMillis(options.minInterval ?? "10 seconds")
    const retryDelay = Duration.toMillis(options.retryDelay ?? "1 second")
    const maxRetryDelay = Duration.toMillis(options.maxRetryDelay ?? "30 minutes")
    const startRetryDelay = Duration.toMillis(options.startRetry?.delay ?? 0)
    const startRetryRounds = options.startRetry?.rounds ?? 0
    const startHedge = options.startHedge === undefined ? undefined : Duration.decode(options.startHedge)
    const stopTimeout = options.stopTimeout ?? "5 seconds"
    const peers = yield* Queue.sliding<PeerAddress>(options.peerQueueCapacity ?? 2000)
    const signals = yield* Queue.unbounded<Signal>()
    const trackerIds = new Map<string, string>()
    const state = yield* Ref.make<AnnouncerState>({
      last: Option.none(),
      nextEvent: "started",
      announces: 0,
      failures: 0,
      tiers
    })
    let started = false
    let completedPending = false
    let stopped = false
    const nextEvent = (): AnnounceEvent => (!started ? "started" : completedPending ? "completed" : "none")

    const requestFor = (event: AnnounceEvent, url: string) =>
      Effect.map(options.progress, (progress): AnnounceRequest => {
        const trackerId = trackerIds.get(url)
        return {
          infoHash: options.infoHash,
          peerId: options.peerId,
          port: options.port,
          uploaded: progress.uploaded,
          downloaded: progress.downloaded,
          left: progress.left,
          event,
          numwant: event === "stopped" ? 0 : (options.numwant ?? 50),
          key,
          ...(options.ip === undefined ? {} : { ip: options.ip }),
          ...(trackerId === undefined ? {} : { trackerId })
        }
      })

    /** One BEP 12 round: the first tracker that answers wins. */
    const announceRound = (
      event: AnnounceEvent
    ): Effect.Effect<
      Either.Either<{ url: string; response: AnnounceResponse }, ReadonlyArray<TrackerError>>
    > =>
      Effect.gen(function* () {
        const errors: Array<TrackerError> = []
        for (const tier of tiers) {
          for (const url of [...tier]) {
            const request = yield* requestFor(event, url)
            const attempt = tracker.announce(url, request)
            const hedged =
              started || startHedge === undefined
                ? attempt
                : Effect.raceFirst(attempt, Effect.delay(attempt, startHedge))
            const result = yield* Effect.either(hedged)
            if (Either.isRight(result)) {
              promote(tiers, url)
              if (result.right.trackerId !== undefined) trackerIds.set(url, result.right.trackerId)
              return Either.right({ url, response: result.right })
            }
            errors.push(result.left)
          }
        }
        return Either.left(errors)
      })

    const loop = Effect.gen(function* () {
      let failures = 0
      /** Failed rounds retried after `startRetry.delay`: before the first answer, at most `rounds`. */
      let quickFailures = 0
      while (true) {
        const event = nextEvent()
        const result = yield* announceRound(event)
        let waitMillis: number
        if (Either.isRight(result)) {
          const { response, url } = result.right
          failures = 0
          quickFailures = 0
          if (event === "started") started = true
          if (event === "completed") completedPending = false
          yield* Queue.offerAll(peers, response.peers)
          yield* Ref.update(state, (s) => ({
            ...s,
            last: Option.some(result.right),
            nextEvent: nextEvent(),
            announces: s.announces + 1,
            tiers
          }))
          if (options.onResponse !== undefined) yield* options.onResponse(url, response)
          waitMillis = Math.max(response.interval * 1000, (response.minInterval ?? 0) * 1000, minInterval)
        } else {
          failures++
          yield* Ref.update(state, (s) => ({ ...s, failures: s.failures + 1 }))
          if (options.onFailure !== undefined) yield* options.onFailure(result.left)
          if (!started && quickFailures < startRetryRounds) {
            quickFailures++
            waitMillis = startRetryDelay
          } else waitMillis = Math.min(retryDelay * 2 ** (failures - quickFailures - 1), maxRetryDelay)
        }
        const signal = yield* Queue.take(signals).pipe(
          Effect.timeout(Duration.millis(waitMillis)),
          Effect.option
        )
        if (Option.isSome(signal) && signal.value === "completed" && started) completedPending = true
        // drain duplicate signals
        const rest = yield* Queue.takeAll(signals)
        for (const s of rest) if (s === "completed" && started) completedPending = true
      }
    })

    const sendStopped = Effect.suspend(() => {
      if (stopped) return Effect.void
      stopped = true
      if (!started) return Effect.void
      return Effect.flatMap(Ref.get(state), (s) => {
        const url = Option.isSome(s.last) ? s.last.value.url : undefined
        if (url === undefined) return Effect.void
        return Effect.flatMap(requestFor("stopped", url), (request) => tracker.announce(url, request)).pipe(
          Effect.timeout(stopTimeout),
          Effect.ignore
        )
      })
    })

    // registered before the fiber, so at scope close the loop is interrupted first, then `stopped` goes out
    yield* Effect.addFinalizer(() => sendStopped)
    const fiber = yield* Effect.forkScoped(loop)

    return {
      peers,
      completed: Effect.asVoid(Queue.offer(signals, "completed")),
      reannounce: Effect.asVoid(Queue.offer(signals, "reannounce")),
      stop: Effect.zipRight(Fiber.interrupt(fiber), sendStopped),
      state: Effect.map(Ref.get(state), (s): AnnouncerState => ({
        ...s,
        nextEvent: nextEvent(),
        tiers: tiers.map((tier) => [...tier])
      }))
    } satisfies Announcer
  })

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
