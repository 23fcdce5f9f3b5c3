/**
 * The `ezio` executable: `pnpm ezio <command>` from a checkout.
 *
 * @since 0.1.0
 */
// First, so V8's heap policy is in place before the other modules load.
import "./internal/heap.js"
import * as StartupTrace from "./internal/startupTrace.js"
import * as ValidationError from "@effect/cli/ValidationError"
import * as NodeContext from "@effect/platform-node/NodeContext"
import * as NodeRuntime from "@effect/platform-node/NodeRuntime"
import * as Cause from "effect/Cause"
import * as Effect from "effect/Effect"
import * as Logger from "effect/Logger"
import * as LogLevel from "effect/LogLevel"
import { exitCodeOf, run } from "./Cli.js"
import * as CliLogger from "./internal/logger.js"

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
