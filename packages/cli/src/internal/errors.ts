// Every way an `ezio` command can fail, and the one place that maps each to its exit code.
import type { PlatformError } from "@effect/platform/Error"
import type { DiskIoError } from "@ezio/disk-io"
import type { Session, Tracker } from "@ezio/peer"
import type { PoolError } from "@ezio/pool"
import type { StorageError } from "@ezio/storage"
import type { Create, Hasher } from "@ezio/storage"
import type { Bencode, Metainfo } from "@ezio/torrent"
import * as Data from "effect/Data"

/**
 * Exit codes, documented in `ezio --help` and the package README.
 *
 * @since 0.1.0
 * @category constants
 */
export const ExitCode = {
  ok: 0,
  internal: 1,
  usage: 2,
  badTorrent: 3,
  data: 4,
  network: 5,
  incomplete: 6
} as const

/**
 * An option's value that @effect/cli accepted as text but ezio cannot use (a size, a peer).
 *
 * @since 0.1.0
 * @category errors
 */
export class UsageError extends Data.TaggedError("UsageError")<{
  readonly option: string
  readonly detail: string
}> {
  override get message(): string {
    return `${this.option}: ${this.detail}`
  }
}

/**
 * Reading or writing a file named on the command line (a .torrent, partclone's info, the demo's
 * images) failed.
 *
 * @since 0.1.0
 * @category errors
 */
export class FileError extends Data.TaggedError("FileError")<{
  readonly path: string
  readonly operation: "read" | "write" | "create" | "remove" | "stat"
  readonly cause: PlatformError
}> {
  override get message(): string {
    return `cannot ${this.operation} ${this.path}: ${describe(this.cause)}`
  }
}

// "ENOENT: no such file or directory, open '/x'" -> "no such file or directory (ENOENT)": the
// path is already in the message.
const describe = (error: PlatformError): string => {
  if (error._tag === "BadArgument") return error.description ?? error.message
  const errno = /^(E[A-Z]+): ([^,]+)/.exec(error.description ?? "")
  return errno !== null ? `${errno[2]} (${errno[1]})` : (error.description ?? error.reason)
}

/**
 * The data named on the command line cannot hold or serve the torrent: missing, wrong kind.
 *
 * @since 0.1.0
 * @category errors
 */
export class TargetError extends Data.TaggedError("TargetError")<{
  readonly path: string
  readonly detail: string
}> {
  override get message(): string {
    return `${this.path}: ${this.detail}`
  }
}

/**
 * A verify or download that ended without every piece.
 *
 * @since 0.1.0
 * @category errors
 */
export class Incomplete extends Data.TaggedError("Incomplete")<{
  readonly path: string
  readonly missing: number
  readonly pieces: number
}> {
  override get message(): string {
    return `${this.path}: ${this.missing} of ${this.pieces} piece(s) missing or corrupt`
  }
}

/**
 * `seed --expect N --deploy-timeout S`: the deploy did not finish in time; `missing` names the
 * targets that did not (name or address, with their state and progress).
 *
 * @since 0.1.0
 * @category errors
 */
export class DeployIncomplete extends Data.TaggedError("DeployIncomplete")<{
  readonly expected: number
  readonly done: number
  readonly seconds: number
  readonly missing: ReadonlyArray<string>
}> {
  override get message(): string {
    const more = this.expected - this.done - this.missing.length
    const names = [...this.missing, ...(more > 0 ? [`${more} target(s) never seen`] : [])]
    return `deploy incomplete after ${this.seconds} s: ${this.done} of ${this.expected} targets done; not finished: ${names.join(", ")}`
  }
}

/**
 * A download stopped by a disk error that would happen again (no space, EIO, read-only, a file
 * too large): what verified pieces it had are synced, and a restart resumes from them.
 *
 * @since 0.1.0
 * @category errors
 */
export class DownloadFailed extends Data.TaggedError("DownloadFailed")<{
  readonly path: string
  readonly detail: string
  readonly have: number
  readonly pieces: number
}> {
  override get message(): string {
    return `${this.path}: download stopped: ${this.detail} (${this.have} of ${this.pieces} pieces verified and kept; a restart resumes)`
  }
}

/**
 * The dashboard (`seed --dashboard PORT`) cannot listen.
 *
 * @since 0.1.0
 * @category errors
 */
export class DashboardError extends Data.TaggedError("DashboardError")<{
  readonly address: string
  readonly cause: unknown
}> {
  override get message(): string {
    return `dashboard: cannot listen on ${this.address}: ${this.cause instanceof Error ? this.cause.message : String(this.cause)}`
  }
}

/**
 * A download that made no progress for the stall timeout, or was stopped (SIGTERM, Ctrl-C)
 * before it was complete.
 *
 * @since 0.1.0
 * @category errors
 */
export class Stalled extends Data.TaggedError("Stalled")<{
  readonly path: string
  readonly missing: number
  readonly pieces: number
  readonly reason: string
}> {
  override get message(): string {
    return `${this.path}: ${this.missing} of ${this.pieces} piece(s) missing: ${this.reason}`
  }
}

/**
 * The exit code of a stop by Ctrl-C or SIGTERM: 0, unless a download still incomplete set it to
 * `incomplete` (the process's exit code is process-wide state, like `process.exitCode`).
 *
 * @since 0.1.0
 * @category constants
 */
export const interrupted = { code: 0 as number }

/**
 * `ezio demo` did not end with a byte-identical copy.
 *
 * @since 0.1.0
 * @category errors
 */
export class DemoFailed extends Data.TaggedError("DemoFailed")<{
  readonly detail: string
}> {
  override get message(): string {
    return `demo failed: ${this.detail}`
  }
}

/**
 * Every error a command can fail with; `Cli.run`'s type is checked against it, so an error a new
 * call site brings in must be given an exit code below.
 *
 * @since 0.1.0
 * @category errors
 */
export type CliError =
  | UsageError
  | FileError
  | TargetError
  | Incomplete
  | DeployIncomplete
  | DashboardError
  | DownloadFailed
  | Stalled
  | DemoFailed
  | Metainfo.MetainfoError
  | Bencode.BencodeError
  | Create.CreateError
  | Hasher.HashError
  | StorageError.StorageError
  | DiskIoError.DiskIoError
  | DiskIoError.InvalidDiskIoOptions
  | Session.SessionError
  | Session.InvalidSessionOptions
  | Session.IncompatiblePool
  | Tracker.TrackerError
  | PoolError.PoolClosed
  | PoolError.PoolExhausted

/**
 * The exit code of a command that failed with `error`.
 *
 * @since 0.1.0
 * @category constants
 */
export const exitCode = (error: CliError): number => {
  switch (error._tag) {
    case "UsageError":
    case "InvalidSessionOptions":
      return ExitCode.usage
    case "MetainfoError":
    case "BencodeError":
      return ExitCode.badTorrent
    case "FileError":
    case "TargetError":
    case "CreateError":
    case "HashError":
    case "StorageError":
    case "DiskIoError":
    case "DownloadFailed":
      return ExitCode.data
    case "SessionError":
    case "TrackerError":
    case "DashboardError":
      return ExitCode.network
    case "Incomplete":
    case "DeployIncomplete":
    case "Stalled":
    case "DemoFailed":
      return ExitCode.incomplete
    case "PoolClosed":
    case "PoolExhausted":
    case "InvalidDiskIoOptions":
    case "IncompatiblePool":
      // The engine sizes every request to the pool and the CLI fixes the engine's options and the
      // pool's block size: reaching these is a bug.
      return ExitCode.internal
    default: {
      // Does not compile while a member of CliError lacks a case; at run time, a failure outside
      // the union (a bug) is an internal error.
      return unhandled(error)
    }
  }
}

const unhandled = (_: never): number => ExitCode.internal
