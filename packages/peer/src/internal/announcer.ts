/**
 * The announcer: keeps a torrent announced to its announce-list tiers (BEP 12) from a fiber,
 * `started`, then every interval, `completed` when told, `stopped` when its scope closes; and the
 * tier helpers it uses. Public through `Tracker`.
 *
 * @internal
 */
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Either from "effect/Either"
import * as Fiber from "effect/Fiber"
import * as Option from "effect/Option"
import * as Queue from "effect/Queue"
import * as Ref from "effect/Ref"
import type * as Scope from "effect/Scope"
import type {
  AnnounceEvent,
  AnnounceRequest,
  AnnounceResponse,
  PeerAddress,
  TrackerError
} from "./trackerModel.js"
import { shuffleInPlace } from "./shuffle.js"

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

/** What the announcer needs of a tracker client (`Tracker`'s service has it). */
export interface AnnounceClient {
  readonly announce: (url: string, request: AnnounceRequest) => Effect.Effect<AnnounceResponse, TrackerError>
}

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
  tracker: AnnounceClient,
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
