/**
 * One error for everything storage does, carrying what a user needs to act: which operation,
 * which path, which piece, and the errno classified (ENOSPC and EIO included, which
 * @effect/platform folds into "Unknown").
 *
 * @since 0.1.0
 */
import * as Data from "effect/Data"

/**
 * @since 0.1.0
 * @category models
 */
export type Reason =
  | "NotFound" // ENOENT
  | "NoSpace" // ENOSPC, EDQUOT
  | "TooLarge" // EFBIG: past the largest file the file system allows
  | "Io" // EIO and anything unclassified
  | "Permission" // EACCES, EPERM
  | "ReadOnly" // EROFS
  | "ShortRead" // the target ended before the requested bytes
  | "TooSmall" // a raw target smaller than the torrent's last extent
  | "OutOfRange" // a request outside the torrent or the piece
  | "UnsafePath" // a path that would leave the target's root
  | "Busy" // EBUSY, ETXTBSY
  | "TooManyOpenFiles" // EMFILE, ENFILE
  | "NotADirectory" // ENOTDIR, EISDIR

/**
 * @since 0.1.0
 * @category models
 */
export type Operation = "open" | "read" | "write" | "sync" | "stat" | "truncate" | "mkdir" | "close" | "check"

/**
 * @since 0.1.0
 * @category errors
 */
export class StorageError extends Data.TaggedError("StorageError")<{
  readonly reason: Reason
  readonly operation: Operation
  readonly path: string
  readonly piece?: number
  /** Byte offset in the file (or device) where it happened. */
  readonly offset?: number
  readonly cause?: unknown
  readonly detail?: string
}> {
  override get message(): string {
    const code = (this.cause as NodeJS.ErrnoException | undefined)?.code
    return (
      `${this.operation} ${this.path}${where(this)}: ` +
      `${describe[this.reason]}${code === undefined ? "" : ` [${code}]`}${this.detail === undefined ? "" : `: ${this.detail}`}`
    )
  }
}

/**
 * Where in a torrent an error happened, for its message: `" (piece 1, offset 64, length 16)"`
 * with the parts that are known, or `""`. Shared by the errors of the layers above storage.
 *
 * @since 0.1.0
 * @category formatting
 */
export const where = (at: {
  readonly piece?: number | undefined
  readonly offset?: number | undefined
  readonly length?: number | undefined
}): string => {
  const parts: Array<string> = []
  if (at.piece !== undefined) parts.push(`piece ${at.piece}`)
  if (at.offset !== undefined) parts.push(`offset ${at.offset}`)
  if (at.length !== undefined) parts.push(`length ${at.length}`)
  return parts.length > 0 ? ` (${parts.join(", ")})` : ""
}

const describe: Record<Reason, string> = {
  NotFound: "no such file or directory",
  NoSpace: "no space left on the target",
  TooLarge: "the file would be larger than the file system allows",
  Io: "input/output error",
  Permission: "permission denied",
  ReadOnly: "the target is read-only",
  ShortRead: "the target ended before the requested bytes",
  TooSmall: "the target is smaller than the torrent needs",
  OutOfRange: "request outside the torrent",
  UnsafePath: "path would leave the target directory",
  Busy: "the target is busy",
  TooManyOpenFiles: "too many open files",
  NotADirectory: "a path component is not a directory (or a directory is in the way)"
}

/**
 * Classifies a Node errno.
 *
 * @since 0.1.0
 * @category constructors
 */
export const reasonOf = (error: NodeJS.ErrnoException): Reason => {
  switch (error.code) {
    case "ENOENT":
      return "NotFound"
    case "ENOSPC":
    case "EDQUOT":
      return "NoSpace"
    case "EFBIG":
      return "TooLarge"
    case "EACCES":
    case "EPERM":
      return "Permission"
    case "EROFS":
      return "ReadOnly"
    case "EBUSY":
    case "ETXTBSY":
      return "Busy"
    case "EMFILE":
    case "ENFILE":
      return "TooManyOpenFiles"
    case "ENOTDIR":
    case "EISDIR":
      return "NotADirectory"
    default:
      return "Io"
  }
}

/**
 * @since 0.1.0
 * @category constructors
 */
export const fromErrno = (
  error: NodeJS.ErrnoException,
  operation: Operation,
  path: string,
  where: { readonly piece?: number; readonly offset?: number } = {}
): StorageError => new StorageError({ reason: reasonOf(error), operation, path, ...where, cause: error })
