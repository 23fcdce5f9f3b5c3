/**
 * The `ezio` command: create, info, seed, download, verify, and a self-contained demo. Each
 * command lives in `internal/commands/<name>.ts`; this module assembles them and maps failures
 * to exit codes.
 *
 * @since 0.1.0
 */
import type { CliApp } from "@effect/cli/CliApp"
import * as Command from "@effect/cli/Command"
import * as ValidationError from "@effect/cli/ValidationError"
import * as Cause from "effect/Cause"
import type * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
import * as Option from "effect/Option"
import { create } from "./internal/commands/create.js"
import { demo } from "./internal/commands/demo.js"
import { download } from "./internal/commands/download.js"
import { info } from "./internal/commands/info.js"
import { seed } from "./internal/commands/seed.js"
import { verify } from "./internal/commands/verify.js"
import { sizeHelp } from "./internal/common.js"
import { type CliError, ExitCode, exitCode, interrupted } from "./internal/errors.js"

export {
  /**
   * Exit codes, documented in `ezio --help`.
   *
   * @since 0.1.0
   * @category constants
   */
  ExitCode,
  /**
   * A verify that found pieces missing or corrupt (exit code 6).
   *
   * @since 0.1.0
   * @category errors
   */
  Incomplete
} from "./internal/errors.js"

/**
 * Every error a command can fail with, each with its exit code.
 *
 * @since 0.1.0
 * @category errors
 */
export type { CliError } from "./internal/errors.js"

/**
 * Which exit code a finished run maps to.
 *
 * @since 0.1.0
 * @category constants
 */
export const exitCodeOf = (exit: Exit.Exit<unknown, unknown>): number => {
  if (Exit.isSuccess(exit)) return ExitCode.ok
  // Ctrl-C and SIGTERM interrupt the program: a clean stop, unless a download was incomplete.
  if (Cause.isInterruptedOnly(exit.cause)) return interrupted.code
  const failure = Cause.failureOption(exit.cause)
  if (Option.isNone(failure)) return ExitCode.internal
  if (ValidationError.isValidationError(failure.value)) return ExitCode.usage
  // `run`'s type admits only CliError; anything else is a bug, and `exitCode` says internal.
  return exitCode(failure.value as CliError)
}

const root = Command.make("ezio").pipe(
  Command.withDescription(
    [
      "Deploy disk images over BitTorrent: `ezio seed` on the source, `ezio download` on every target.",
      "Exit codes: 0 done (a download: complete and synced; also Ctrl-C or SIGTERM of a seed or a finished download),",
      "1 internal error, 2 bad arguments, 3 invalid torrent, 4 data error (missing, too small, unreadable, disk full,",
      "read-only; a download stopped by one keeps its verified pieces), 5 network error (cannot listen),",
      "6 data incomplete (verify found bad pieces; a download stalled for --stall-timeout or stopped before complete).",
      `Sizes take ${sizeHelp}.`
    ].join(" ")
  ),
  Command.withSubcommands([create, info, seed, download, verify, demo])
)

/**
 * Runs the CLI on `argv` (as `process.argv`). It fails only with a `CliError` or an @effect/cli
 * usage error: a command that could fail otherwise does not compile here.
 *
 * @since 0.1.0
 * @category constructors
 */
export const run: (
  argv: ReadonlyArray<string>
) => Effect.Effect<void, CliError | ValidationError.ValidationError, CliApp.Environment> = Command.run(root, {
  name: "ezio",
  version: "0.1.0"
})
