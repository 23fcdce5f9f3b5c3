// When a completed target stops seeding. EZIO pauses a finished target once it has uploaded
// 3 × its size or has been finished a while and idle; here the default is "the swarm no longer
// needs us": no block sent to anyone for --seed-idle, or every connected peer is complete.
import * as Options from "@effect/cli/Options"
import { DiskIo } from "@ezio/disk-io"
import type { Session } from "@ezio/peer"
import * as Clock from "effect/Clock"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Option from "effect/Option"
import { emit } from "./common.js"
import { UsageError } from "./errors.js"
import { names, total } from "./serveStatus.js"

export const finishOptions = {
  exit: Options.boolean("exit").pipe(
    Options.withDescription("Exit as soon as every piece is written and verified, without seeding")
  ),
  seed: Options.boolean("seed").pipe(
    Options.withDescription("Seed on after completing until stopped (Ctrl-C, SIGTERM)")
  ),
  seedIdle: Options.integer("seed-idle").pipe(
    Options.withDefault(30),
    Options.withDescription(
      "After completing, exit once no peer has been sent a block for this many seconds (or every peer is complete)"
    )
  ),
  seedTime: Options.integer("seed-time").pipe(
    Options.optional,
    Options.withDescription("After completing, seed at most this many seconds")
  ),
  seedRatio: Options.float("seed-ratio").pipe(
    Options.optional,
    Options.withDescription(
      "After completing, exit once uploaded bytes reach this many times the torrent's size"
    )
  )
}

export type FinishPolicy =
  | { readonly _tag: "Exit" }
  | { readonly _tag: "Seed" }
  | {
      readonly _tag: "WhenIdle"
      readonly idleMs: number
      readonly timeMs: number | undefined
      readonly ratio: number | undefined
    }

export interface FinishArgs {
  readonly exit: boolean
  readonly seed: boolean
  readonly seedIdle: number
  readonly seedTime: Option.Option<number>
  readonly seedRatio: Option.Option<number>
}

export const policyOf = (args: FinishArgs): Effect.Effect<FinishPolicy, UsageError> => {
  if (args.exit && args.seed)
    return Effect.fail(new UsageError({ option: "--exit", detail: "cannot be combined with --seed" }))
  if (args.exit) return Effect.succeed({ _tag: "Exit" })
  if (args.seed) return Effect.succeed({ _tag: "Seed" })
  if (args.seedIdle < 1)
    return Effect.fail(new UsageError({ option: "--seed-idle", detail: "must be at least 1 second" }))
  const time = Option.getOrUndefined(args.seedTime)
  if (time !== undefined && time < 0)
    return Effect.fail(new UsageError({ option: "--seed-time", detail: "must be 0 seconds or more" }))
  const ratio = Option.getOrUndefined(args.seedRatio)
  if (ratio !== undefined && !(ratio >= 0))
    return Effect.fail(new UsageError({ option: "--seed-ratio", detail: "must be 0 or more" }))
  return Effect.succeed({
    _tag: "WhenIdle",
    idleMs: args.seedIdle * 1000,
    timeMs: time === undefined ? undefined : time * 1000,
    ratio
  })
}

export interface Progress {
  readonly peers: number
  readonly seeds: number
  readonly lastUploadAt: number | undefined
  /** Uploaded since completing. */
  readonly uploadedSince: number
}

/** Why a completed target stops now, or undefined to seed on. Pure, for tests. */
export const reason = (
  policy: FinishPolicy & { readonly _tag: "WhenIdle" },
  p: Progress,
  completedAt: number,
  now: number,
  size: number
): string | undefined => {
  if (policy.timeMs !== undefined && now - completedAt >= policy.timeMs) return "seed time reached"
  if (policy.ratio !== undefined && p.uploadedSince >= policy.ratio * size) return "seed ratio reached"
  if (p.peers > 0 && p.seeds === p.peers) return "every peer is complete"
  const lastUseful = Math.max(completedAt, p.lastUploadAt ?? 0)
  if (now - lastUseful >= policy.idleMs) return `no peer needed a block for ${policy.idleMs / 1000} s`
  return undefined
}

/**
 * Seeds completed swarms (one per torrent of this target) until `policy` says the swarm no longer
 * needs them, taken together: the idle time counts from the last block sent in any of them, the
 * ratio is over their total size; returns why.
 */
export const seedOn = (
  swarms: ReadonlyArray<Session.Swarm>,
  policy: FinishPolicy & { readonly _tag: "WhenIdle" }
) =>
  Effect.gen(function* () {
    const status = () => total(swarms.map((swarm) => swarm.unsafeStatus()))
    const completedAt = yield* Clock.currentTimeMillis
    const uploadedAtCompletion = status().uploaded
    let size = 0
    for (const swarm of swarms) size += swarm.metainfo.totalLength
    const check = Effect.flatMap(Clock.currentTimeMillis, (now) =>
      Effect.sync(() => {
        const s = status()
        return reason(
          policy,
          {
            peers: s.peers,
            seeds: s.seeds,
            lastUploadAt: s.lastUploadAt,
            uploadedSince: s.uploaded - uploadedAtCompletion
          },
          completedAt,
          now,
          size
        )
      })
    )
    const wait: Effect.Effect<string> = Effect.flatMap(check, (why) =>
      why !== undefined ? Effect.succeed(why) : Effect.zipRight(Effect.sleep(Duration.millis(500)), wait)
    )
    return yield* wait
  })

/** Waits until every swarm is complete (verified and synced), then syncs each once more. */
export const allComplete = (swarms: ReadonlyArray<Session.Swarm>) =>
  Effect.gen(function* () {
    yield* Effect.all(
      swarms.map((swarm) => swarm.complete),
      { concurrency: "unbounded", discard: true }
    ).pipe(Effect.withSpan("ezio.download.complete"))
    const disk = yield* DiskIo.DiskIo
    yield* Effect.forEach(swarms, (swarm) => disk.sync(swarm.disk), { discard: true }).pipe(
      Effect.withSpan("ezio.download.sync")
    )
  })

/** `download`'s default end: wait for completion, make it durable, seed while needed, return. */
export const untilFinished = (
  swarms: ReadonlyArray<Session.Swarm>,
  policy: FinishPolicy & { readonly _tag: "WhenIdle" },
  json: boolean
) =>
  Effect.gen(function* () {
    yield* allComplete(swarms)
    const name = names(swarms.map((swarm) => swarm.metainfo))
    yield* emit(json, { event: "complete" }, `\ncomplete: ${name} verified; seeding while peers need it`)
    const why = yield* seedOn(swarms, policy).pipe(Effect.withSpan("ezio.download.seedOn"))
    yield* emit(json, { event: "finished", reason: why }, `\nfinished seeding ${name}: ${why}`)
  })
