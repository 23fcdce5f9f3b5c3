// `ezio seed` watching its deploy: the live table on a terminal, the dashboard, `--expect N`
// (end once N targets are done) with `--deploy-timeout`, and the summary at the end.
import * as Options from "@effect/cli/Options"
import type { Deploy } from "@ezio/peer"
import * as Clock from "effect/Clock"
import * as Console from "effect/Console"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Option from "effect/Option"
import * as Schedule from "effect/Schedule"
import { emit, isTty } from "./common.js"
import * as Dashboard from "./dashboard/server.js"
import * as View from "./deployView.js"
import { DeployIncomplete, UsageError } from "./errors.js"

export const deployOptions = {
  expect: Options.integer("expect").pipe(
    Options.optional,
    Options.withDescription("End the deploy (exit 0) once this many targets have completed and stopped")
  ),
  deployTimeout: Options.integer("deploy-timeout").pipe(
    Options.optional,
    Options.withDescription(
      "With --expect: give up after this many seconds, exit 6 naming the unfinished targets"
    )
  ),
  dashboard: Options.integer("dashboard").pipe(
    Options.optional,
    Options.withDescription("Serve a live deploy page, /api/deploy and /metrics on this port (on --bind)")
  )
}

export interface DeployArgs {
  readonly expect: Option.Option<number>
  readonly deployTimeout: Option.Option<number>
  readonly dashboard: Option.Option<number>
}

/** Seconds between target announces to our own tracker: often enough for a live view. */
export const announceInterval = 3

export const check = (args: DeployArgs): Effect.Effect<void, UsageError> => {
  if (Option.isSome(args.expect) && args.expect.value < 1)
    return Effect.fail(new UsageError({ option: "--expect", detail: "must be at least 1" }))
  if (Option.isSome(args.deployTimeout) && (Option.isNone(args.expect) || args.deployTimeout.value < 1))
    return Effect.fail(
      new UsageError({ option: "--deploy-timeout", detail: "needs --expect, and at least 1 second" })
    )
  return Effect.void
}

export interface WatchOptions {
  readonly args: DeployArgs
  readonly deploy: Deploy.Deploy
  readonly bind: string
  readonly json: boolean
  readonly title: string
  readonly metrics: (snapshot: Deploy.Snapshot) => string
}

/** Runs until the deploy ends (with --expect) or forever; prints the summary when it stops. */
export const watch = (o: WatchOptions) =>
  Effect.gen(function* () {
    const started = yield* Clock.currentTimeMillis
    const expected = Option.getOrUndefined(o.args.expect)
    if (Option.isSome(o.args.dashboard)) {
      const dashboard = yield* Dashboard.make({
        host: o.bind,
        port: o.args.dashboard.value,
        title: o.title,
        deploy: o.deploy,
        metrics: o.metrics
      })
      yield* emit(o.json, { event: "dashboard", url: dashboard.url }, `dashboard: ${dashboard.url}`)
    }
    if (isTty() && !o.json) {
      let drawn = 0
      const draw = Effect.flatMap(o.deploy.snapshot.get, (s) =>
        Effect.sync(() => {
          const lines = View.table(s, expected)
          // clear the status line below the table, go back to the table's top, redraw
          process.stdout.write(`\r\x1b[K${drawn > 0 ? `\x1b[${drawn}A` : ""}\x1b[J${lines.join("\n")}\n`)
          drawn = lines.length
        })
      )
      yield* Effect.forkScoped(Effect.repeat(draw, Schedule.spaced("1 second")))
    }
    yield* Effect.addFinalizer(() =>
      Effect.flatMap(Effect.all([o.deploy.snapshot.get, Clock.currentTimeMillis]), ([s, now]) =>
        o.json
          ? Console.log(JSON.stringify(View.summaryJson(s, (now - started) / 1000)))
          : Console.log(`\n${View.summaryText(s, (now - started) / 1000)}`)
      )
    )
    if (expected === undefined) return yield* Effect.never
    const done = o.deploy
      .awaitDone(expected)
      .pipe(Effect.withSpan("ezio.seed.deploy", { attributes: { expected } }))
    if (Option.isNone(o.args.deployTimeout)) {
      yield* done
      return
    }
    const seconds = o.args.deployTimeout.value
    const finished = yield* Effect.timeout(done, Duration.seconds(seconds)).pipe(Effect.option)
    if (Option.isSome(finished)) return
    const s = yield* o.deploy.snapshot.get
    return yield* new DeployIncomplete({
      expected,
      done: s.totals.byState.done,
      seconds,
      missing: View.unfinished(s)
    })
  })
