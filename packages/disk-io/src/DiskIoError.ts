/**
 * One error for every disk job, carrying what a caller needs to act: which job, which torrent and
 * piece, why, and the underlying `StorageError`, `HashError` or pool error as `cause`.
 *
 * @since 0.1.0
 */
import * as Data from "effect/Data"

/**
 * Why a job failed:
 * - `"Storage"`: this job's own storage call failed (`cause` is the `StorageError`);
 * - `"WriteFailed"`: an earlier write of the piece (or torrent) failed; reported by `hash` and
 *   `flush` so a piece whose data never reached storage is never taken as good (`cause` is the
 *   write's `StorageError`);
 * - `"Hash"`: the hasher failed (`cause` is the `HashError`);
 * - `"Pool"`: the pool has been closed, or a request needs more blocks than its hard limit;
 * - `"OutOfRange"`: a piece, offset or length outside the torrent or the piece;
 * - `"Unaligned"`: a write that is not one whole block at a block boundary;
 * - `"InvalidBlock"`: a write of a block that was already released;
 * - `"TorrentRemoved"`: the torrent was removed (or is being removed);
 * - `"UnknownTorrent"`: a handle from another engine;
 * - `"Closed"`: the engine has shut down.
 *
 * @since 0.1.0
 * @category models
 */
export type Reason =
  | "Storage"
  | "WriteFailed"
  | "Hash"
  | "Pool"
  | "OutOfRange"
  | "Unaligned"
  | "InvalidBlock"
  | "TorrentRemoved"
  | "UnknownTorrent"
  | "Closed"

/**
 * @since 0.1.0
 * @category models
 */
export type Operation =
  | "read"
  | "write"
  | "hash"
  | "flush"
  | "sync"
  | "clearPiece"
  | "releaseFiles"
  | "stopTorrent"
  | "addTorrent"
  | "removeTorrent"

/**
 * @since 0.1.0
 * @category errors
 */
export class DiskIoError extends Data.TaggedError("DiskIoError")<{
  readonly reason: Reason
  readonly operation: Operation
  /** The torrent's id in its engine. */
  readonly torrent: number
  /** The torrent's name (its layout's name unless given). */
  readonly name: string
  readonly piece?: number
  /** Byte offset in the piece. */
  readonly offset?: number
  readonly length?: number
  readonly cause?: unknown
  readonly detail?: string
}> {
  override get message(): string {
    const where = [
      this.piece === undefined ? undefined : `piece ${this.piece}`,
      this.offset === undefined ? undefined : `offset ${this.offset}`,
      this.length === undefined ? undefined : `length ${this.length}`
    ].filter((x) => x !== undefined)
    const cause = this.cause instanceof Error && this.cause.message !== "" ? `: ${this.cause.message}` : ""
    return (
      `DiskIo.${this.operation} of torrent ${this.torrent} "${this.name}"` +
      `${where.length > 0 ? ` (${where.join(", ")})` : ""}: ${describe[this.reason]}` +
      `${this.detail === undefined ? "" : `: ${this.detail}`}${cause}`
    )
  }
}

const describe: Record<Reason, string> = {
  Storage: "storage failed",
  WriteFailed: "an earlier write failed, the data never reached storage",
  Hash: "hashing failed",
  Pool: "no buffer could be had from the pool",
  OutOfRange: "request outside the torrent or the piece",
  Unaligned: "a write must be one whole block at a block boundary",
  InvalidBlock: "the block was already released",
  TorrentRemoved: "the torrent has been removed",
  UnknownTorrent: "the torrent does not belong to this engine",
  Closed: "the disk engine has shut down"
}

/**
 * An engine option out of its range: which option, the value given, and the rule it breaks.
 *
 * @since 0.1.0
 * @category errors
 */
export class InvalidDiskIoOptions extends Data.TaggedError("InvalidDiskIoOptions")<{
  readonly option: string
  readonly value: unknown
  readonly reason: string
}> {
  override get message(): string {
    return `DiskIo option "${this.option}" = ${String(this.value)}: ${this.reason}`
  }
}
