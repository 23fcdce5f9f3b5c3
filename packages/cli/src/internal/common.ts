// What several commands share: options, the disk engine, .torrent files, progress and output lines.
import * as Args from "@effect/cli/Args"
import * as Options from "@effect/cli/Options"
import * as FileSystem from "@effect/platform/FileSystem"
import { DiskIo } from "@ezio/disk-io"
import { BufferPool, Size } from "@ezio/pool"
import { Check } from "@ezio/storage"
import { Hasher } from "@ezio/storage"
import { Metainfo } from "@ezio/torrent"
import * as Console from "effect/Console"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import { FileError, UsageError } from "./errors.js"
import { parseSize } from "./format.js"
import * as Heap from "./heap.js"

// ---------------------------------------------------------------------------------------------
// Options

export const torrentArg = Args.file({ name: "torrent" }).pipe(
  Args.withDescription("The .torrent file, or for download a magnet link (magnet:?xt=urn:btih:...)")
)

export const json = Options.boolean("json").pipe(Options.withDescription("Print JSON lines instead of text"))

export const poolSize = Options.text("pool-size").pipe(
  Options.withDefault("256MiB"),
  Options.withDescription(
    "Memory for the buffer pool shared by reads, writes and hashing (e.g. 128MiB, 1GiB; units are binary, 1GB = 1GiB)"
  )
)

export const trackers = Options.text("tracker").pipe(
  Options.repeated,
  Options.withDescription("Announce to this tracker URL too (repeatable; tried before the torrent's own)")
)

/** How sizes are written, for option descriptions. */
export const sizeHelp = `binary units: 1KB = 1KiB = 1024 bytes, 1GB = 1GiB; e.g. ${Size.examples}`

// ---------------------------------------------------------------------------------------------
// The disk engine: one pool shared by DiskIo, its hashing workers and every session.

/**
 * Bytes of received blocks the engine holds (waiting to be written or hashed) before a download
 * pauses its peers: EZIO_DISK_QUEUED_MIB, default 8 (DiskIo's own default is 16). Reached within
 * the first GiB of a download, so its pool's high-water is the same at any size (the peer
 * README's "Memory at 4 GiB").
 */
const maxQueuedBytes = (): number => {
  const mib = Number(process.env.EZIO_DISK_QUEUED_MIB ?? 8)
  return (Number.isInteger(mib) && mib > 0 ? mib : 8) * 1024 * 1024
}

export const engineWith = <E>(
  name: string,
  pool: Layer.Layer<BufferPool.BufferPool, E>,
  hotJobs: "workers" | "caller" = "workers"
) =>
  // The environment is read when the layer is built, never at evaluation (a startup snapshot).
  Layer.unwrapEffect(Effect.sync(() => DiskIo.layer({ name, maxQueuedBytes: maxQueuedBytes() }))).pipe(
    Layer.provideMerge(Hasher.layer({ workerStart: Heap.workerStart, hotJobs })),
    Layer.provideMerge(pool)
  )

/**
 * The engine of a command with a `--pool-size` option. `hotJobs: "caller"` (a download) hashes
 * received pieces on the main thread, where they are in the cache (Hasher's `hotJobs`).
 */
export const engine = (poolSizeText: string, hotJobs: "workers" | "caller" = "workers") =>
  engineWith(
    "ezio",
    Layer.unwrapEffect(
      Effect.map(parseSize(poolSizeText, "--pool-size"), (capacity) =>
        BufferPool.layer({ capacity, name: "ezio" }).pipe(
          Layer.mapError(
            (error) => new UsageError({ option: "--pool-size", detail: `"${poolSizeText}" ${error.reason}` })
          )
        )
      )
    ),
    hotJobs
  )

// ---------------------------------------------------------------------------------------------
// Files named on the command line

export const readFile = (path: string) =>
  Effect.flatMap(FileSystem.FileSystem, (fs) => fs.readFile(path)).pipe(
    Effect.mapError((cause) => new FileError({ path, operation: "read", cause }))
  )

export const readText = (path: string) =>
  Effect.flatMap(FileSystem.FileSystem, (fs) => fs.readFileString(path)).pipe(
    Effect.mapError((cause) => new FileError({ path, operation: "read", cause }))
  )

export const writeFile = (path: string, bytes: Uint8Array) =>
  Effect.flatMap(FileSystem.FileSystem, (fs) => fs.writeFile(path, bytes)).pipe(
    Effect.mapError((cause) => new FileError({ path, operation: "write", cause }))
  )

export const readTorrent = (path: string) => Effect.flatMap(readFile(path), (bytes) => Metainfo.decode(bytes))

// ---------------------------------------------------------------------------------------------
// Output

/** Whether stdout is a terminal (asked when needed: a startup snapshot evaluates modules at build). */
export const isTty = (): boolean => process.stdout.isTTY === true

/** A progress line rewritten in place on a terminal; nothing when piped or with --json. */
export const progressLine = (quiet: boolean) => {
  const shown = isTty() && !quiet
  return {
    show: (text: string) => {
      if (shown) process.stdout.write(`\r${text}   `)
    },
    clear: Effect.sync(() => {
      if (shown) process.stdout.write("\r\x1b[K")
    })
  }
}

/** One result line: `value` as JSON with --json, `text` otherwise. */
export const emit = (asJson: boolean, value: object, text: string) =>
  Console.log(asJson ? JSON.stringify(value) : text)

/** Checks `storage` against the piece hashes, with a progress line on a terminal. */
export const check = (
  storage: Parameters<typeof Check.check>[0],
  meta: Metainfo.Metainfo,
  quiet: boolean
) => {
  const line = progressLine(quiet)
  return Check.check(storage, {
    pieceHashes: meta.pieces,
    onProgress: (p) => line.show(`checking ${p.checked}/${p.total} pieces, ${p.have} good`)
  }).pipe(Effect.tap(() => line.clear))
}
