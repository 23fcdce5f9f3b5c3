/**
 * The `ezio` executable: `pnpm ezio <command>` from a checkout.
 *
 * Evaluating this module runs the CLI on `process.argv`, except while Node builds a startup
 * snapshot (scripts/build-sea.mjs): then everything is loaded and evaluated, and the run is left
 * to the deserialized executable, so that a target starts from an initialised heap.
 *
 * @since 0.1.0
 */
import * as NV8 from "node:v8"
import * as Heap from "./internal/heap.js"
import * as StartupTrace from "./internal/startupTrace.js"
import * as ValidationError from "@effect/cli/ValidationError"
import * as NodeContext from "@effect/platform-node/NodeContext"
import * as NodeRuntime from "@effect/platform-node/NodeRuntime"
import * as Cause from "effect/Cause"
import * as Effect from "effect/Effect"
import * as Logger from "effect/Logger"
import * as LogLevel from "effect/LogLevel"
import * as Random from "effect/Random"
import { exitCodeOf, run } from "./Cli.js"
import * as CliLogger from "./internal/logger.js"

const main = () => {
  // What depends on the environment is read here, at run time, never at evaluation (a snapshot
  // would have frozen the build machine's).
  Heap.apply()
  StartupTrace.start()
  StartupTrace.mark("evaluated")
  const debug = process.env.EZIO_LOG === "debug"
  run(process.argv).pipe(
    // @effect/cli prints usage errors itself; ours are printed here, one line, then mapped to an exit code.
    Effect.tapErrorCause((cause) =>
      Effect.sync(() => {
        if (Cause.isInterruptedOnly(cause)) return
        const failure = Cause.failureOption(cause)
        if (failure._tag === "Some") {
          // @effect/cli has already printed its usage errors.
          if (ValidationError.isValidationError(failure.value)) return
          const error = failure.value as { message?: string }
          console.error(`ezio: ${error.message ?? String(error)}`)
        } else console.error(`ezio: internal error\n${Cause.pretty(cause)}`)
      })
    ),
    // Effect seeds its default Random when its module is evaluated; a snapshot would give every
    // process the build's seed.
    Effect.withRandom(Random.make(Math.random())),
    Effect.provide(Logger.minimumLogLevel(debug ? LogLevel.Debug : LogLevel.Info)),
    Effect.provide(CliLogger.layer({ debug })),
    Effect.provide(NodeContext.layer),
    // No pretty logger: the CLI's own (internal/logger.ts) writes every log line to stderr.
    NodeRuntime.runMain({
      disableErrorReporting: true,
      disablePrettyLogger: true,
      teardown: (exit, done) => done(exitCodeOf(exit))
    })
  )
}

// Node 20 answers 1 or 0, later versions a boolean.
if (NV8.startupSnapshot?.isBuildingSnapshot()) NV8.startupSnapshot.setDeserializeMainFunction(main)
else main()
