/**
 * The deploy as the seeder sees it: every target that announces to the embedded tracker, with
 * its name, address, progress, rates and state (downloading, seeding, done, gone), built from the
 * announces alone (`left`, `uploaded`, `downloaded`, `event` and an optional `name` parameter).
 * Feed it with `EmbeddedTracker.make({ onAnnounce: deploy.record })`; read it as a
 * `SubscriptionRef` of snapshots.
 *
 * @since 0.1.0
 */
import * as Effect from "effect/Effect"
import * as Metric from "effect/Metric"
import type * as Scope from "effect/Scope"
import * as Stream from "effect/Stream"
import * as SubscriptionRef from "effect/SubscriptionRef"
import * as Model from "./internal/deployModel.js"
import { toHex } from "./internal/urlCodec.js"

/**
 * @since 0.1.0
 * @category models
 */
export type TargetState = Model.TargetState

/**
 * One announce, as `EmbeddedTracker`'s `onAnnounce` reports it.
 *
 * @since 0.1.0
 * @category models
 */
export type Announce = Model.Announce

/**
 * One target: `torrents` maps each info-hash (hex) it announced to its `left`/`uploaded`/`downloaded`.
 *
 * @since 0.1.0
 * @category models
 */
export type Target = Model.Target

/**
 * Counts over every target: by state, bytes, aggregate rates, and an ETA in seconds.
 *
 * @since 0.1.0
 * @category models
 */
export type Totals = Model.Totals

/**
 * The deploy at one moment (`at`, ms on the Clock).
 *
 * @since 0.1.0
 * @category models
 */
export interface Snapshot {
  readonly at: number
  readonly targets: ReadonlyArray<Target>
  readonly totals: Totals
}

/**
 * @since 0.1.0
 * @category models
 */
export interface Options {
  /** The torrents every target must have: info-hash (20 bytes or hex) and size in bytes. */
  readonly torrents: ReadonlyArray<{ readonly infoHash: Uint8Array | string; readonly size: number }>
  /** Peer ids that are not targets (the seeder's own). */
  readonly exclude?: ReadonlyArray<Uint8Array>
  /** A target silent this long is gone (or done, if it had everything). Default 15 s. */
  readonly expireAfter?: number
}

/**
 * @since 0.1.0
 * @category models
 */
export interface Deploy {
  /** Records one announce; plain code, for the tracker's request callback. */
  readonly record: (announce: Announce) => void
  /** The latest snapshot, republished on every announce and every second (for expiry and rates). */
  readonly snapshot: SubscriptionRef.SubscriptionRef<Snapshot>
  /** Waits until at least `n` targets are done (complete and stopped or silent). */
  readonly awaitDone: (n: number) => Effect.Effect<Snapshot>
}

const hex = (value: Uint8Array | string): string =>
  typeof value === "string" ? value.toLowerCase() : toHex(value)

/**
 * Targets by state, as an Effect gauge tagged `state`.
 *
 * @since 0.1.0
 * @category metrics
 */
export const targetsGauge = Metric.gauge("ezio_deploy_targets", { description: "Deploy targets by state" })

/**
 * The done targets the deploy waits for: the largest `n` of an `awaitDone(n)` so far.
 *
 * @since 0.1.0
 * @category metrics
 */
export const targetsExpected = Metric.gauge("ezio_deploy_targets_expected", {
  description: "Done targets the deploy waits for"
})

/**
 * Bytes the targets hold, over all targets and torrents (`totals.have`).
 *
 * @since 0.1.0
 * @category metrics
 */
export const haveBytes = Metric.gauge("ezio_deploy_have_bytes", { description: "Bytes the targets hold" })

/**
 * Bytes the targets must hold when every one is done (`totals.size`).
 *
 * @since 0.1.0
 * @category metrics
 */
export const sizeBytes = Metric.gauge("ezio_deploy_size_bytes", {
  description: "Bytes the targets hold when every one is done"
})

/**
 * Snapshot of a model.
 *
 * @since 0.1.0
 * @category constructors
 */
export const snapshotOf = (model: Model.Model, at: number): Snapshot => ({
  at,
  targets: [...model.targets.values()],
  totals: Model.totals(model)
})

/**
 * Targets still downloading, least progress first.
 *
 * @since 0.1.0
 * @category models
 */
export const slowest = (snapshot: Snapshot, n: number): ReadonlyArray<Target> =>
  snapshot.targets
    .filter((t) => t.state === "downloading")
    .sort((a, b) => a.have / Math.max(1, a.size) - b.have / Math.max(1, b.size))
    .slice(0, n)

/**
 * A plain-JSON view of a snapshot (torrent maps as arrays), for `/api/deploy` and `--json`.
 *
 * @since 0.1.0
 * @category models
 */
export const toJson = (snapshot: Snapshot) => ({
  at: snapshot.at,
  totals: snapshot.totals,
  targets: snapshot.targets.map((t) => ({
    ...t,
    progress: t.size > 0 ? t.have / t.size : 1,
    torrents: [...t.torrents].map(([infoHash, p]) => ({ infoHash, ...p }))
  }))
})

/**
 * Starts tracking a deploy in the current scope.
 *
 * @since 0.1.0
 * @category constructors
 */
export const make = (options: Options): Effect.Effect<Deploy, never, Scope.Scope> =>
  Effect.gen(function* () {
    const clock = yield* Effect.clock
    const ttl = options.expireAfter ?? 15_000
    let model = Model.empty(
      new Map(options.torrents.map((t) => [hex(t.infoHash), t.size])),
      new Set((options.exclude ?? []).map(hex))
    )
    const snapshot = yield* SubscriptionRef.make(snapshotOf(model, clock.unsafeCurrentTimeMillis()))
    const dirty = yield* Effect.makeLatch(false)
    let expected = 0
    const publish = Effect.suspend(() => {
      const now = clock.unsafeCurrentTimeMillis()
      model = Model.expire(model, now, ttl)
      const next = snapshotOf(model, now)
      return Effect.zipRight(
        SubscriptionRef.set(snapshot, next),
        Effect.forEach(
          Object.entries(next.totals.byState),
          ([state, n]) => Metric.set(Metric.tagged(targetsGauge, "state", state), n),
          { discard: true }
        ).pipe(
          Effect.zipRight(Metric.set(haveBytes, next.totals.have)),
          Effect.zipRight(Metric.set(sizeBytes, next.totals.size))
        )
      )
    })
    // announces arrive in node:http callbacks: they open a latch, one fiber publishes
    yield* dirty.await.pipe(
      Effect.zipRight(Effect.sync(() => dirty.unsafeClose())),
      Effect.zipRight(publish),
      Effect.forever,
      Effect.forkScoped
    )
    yield* Effect.sleep("1 second").pipe(Effect.zipRight(publish), Effect.forever, Effect.forkScoped)
    return {
      record: (announce) => {
        const next = Model.apply(model, announce)
        if (next !== model) {
          model = next
          dirty.unsafeOpen()
        }
      },
      snapshot,
      awaitDone: (n) =>
        Effect.zipRight(
          Effect.suspend(() => {
            expected = Math.max(expected, n)
            return Metric.set(targetsExpected, expected)
          }),
          snapshot.changes.pipe(
            Stream.filter((s) => s.totals.byState.done >= n),
            Stream.runHead,
            Effect.flatMap((s) =>
              s._tag === "Some" ? Effect.succeed(s.value) : SubscriptionRef.get(snapshot)
            )
          )
        )
    }
  })
