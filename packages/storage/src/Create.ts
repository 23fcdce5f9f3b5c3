/**
 * Creating torrents from a file, a directory (deterministic file order) or a raw disk image
 * (EZIO's hex-offset format, skipping unused space found by scanning for zeros or read from
 * partclone's `torrent.info`). Data streams through a few large shared buffers while the `Hasher`
 * workers hash them, so both cores work and memory stays small whatever the size.
 *
 * @since 0.1.0
 */
import * as NFS from "node:fs"
import * as NPath from "node:path"
import * as Data from "effect/Data"
import * as Effect from "effect/Effect"
import * as Either from "effect/Either"
import { Metainfo, RawImage } from "@ezio/torrent"
import * as Hasher from "./Hasher.js"
import type { HashError } from "./Hasher.js"

/**
 * @since 0.1.0
 * @category errors
 */
export class CreateError extends Data.TaggedError("CreateError")<{
  readonly reason: "NotFound" | "Io" | "Empty" | "Unsupported" | "InvalidOption" | "Changed"
  readonly path: string
  readonly detail: string
  readonly cause?: unknown
}> {
  override get message(): string {
    return `cannot create a torrent from ${this.path}: ${this.detail}`
  }
}

/**
 * @since 0.1.0
 * @category models
 */
export interface Progress {
  readonly hashedBytes: number
  readonly totalBytes: number
}

/**
 * @since 0.1.0
 * @category models
 */
export interface Options {
  /** A power of two from 16 KiB to 256 MiB; default: chosen from the size (see `autoPieceLength`). */
  readonly pieceLength?: number
  /** The torrent's name; default: the file's or directory's base name. */
  readonly name?: string
  /** Announce URLs in BEP 12 tiers. */
  readonly trackers?: ReadonlyArray<ReadonlyArray<string>>
  readonly comment?: string
  /** Default `ezio/0.1.0`. */
  readonly createdBy?: string
  /** Seconds since the epoch; default now; `null` leaves it out (reproducible output). */
  readonly creationDate?: number | null
  readonly private?: boolean
  readonly urlList?: ReadonlyArray<string>
  readonly onProgress?: (progress: Progress) => void
}

/**
 * @since 0.1.0
 * @category models
 */
export interface RawOptions extends Options {
  /**
   * Zero scanning: runs of this many bytes that are all zero are left out of the torrent.
   * A multiple of 4 KiB; default 1 MiB. Ignored with `partcloneInfo`.
   */
  readonly granularity?: number
  /** The text of partclone's `torrent.info` for this image: its extents and hashes are used. */
  readonly partcloneInfo?: string
  /** Digits in extent file names; default 16 (EZIO's), or partclone's width with `partcloneInfo`. */
  readonly nameWidth?: number
}

/**
 * The piece length mature tools would choose: a power of two giving about 1,500 pieces, between
 * 16 KiB and 16 MiB (EZIO's raw images use 16 MiB).
 *
 * @since 0.1.0
 * @category constructors
 */
export const autoPieceLength = (totalLength: number): number => {
  let length = 16 * 1024
  while (length < 16 * 1024 * 1024 && totalLength / length > 1500) length *= 2
  return length
}

/** A run of bytes of one source file, in torrent order. */
interface Segment {
  readonly path: string
  readonly position: number
  readonly length: number
}

const ioError = (path: string, cause: unknown): CreateError => {
  const code = (cause as NodeJS.ErrnoException)?.code
  return new CreateError({
    reason: code === "ENOENT" ? "NotFound" : "Io",
    path,
    detail: code === "ENOENT" ? "it does not exist" : `${(cause as Error)?.message ?? String(cause)}`,
    cause
  })
}

const stat = (path: string) =>
  Effect.tryPromise({ try: () => NFS.promises.stat(path), catch: (cause) => ioError(path, cause) })

const compareBytes = (a: string, b: string) => Buffer.compare(Buffer.from(a), Buffer.from(b))

/** Regular files under `root`, sorted component by component in byte order. */
const walk = (root: string): Effect.Effect<Array<{ path: Array<string>; length: number }>, CreateError> =>
  Effect.gen(function* () {
    const out: Array<{ path: Array<string>; length: number }> = []
    const visit = (dir: string, prefix: Array<string>): Effect.Effect<void, CreateError> =>
      Effect.gen(function* () {
        const entries = yield* Effect.tryPromise({
          try: () => NFS.promises.readdir(dir),
          catch: (cause) => ioError(dir, cause)
        })
        entries.sort(compareBytes)
        for (const entry of entries) {
          const full = NPath.join(dir, entry)
          // Symlinks are followed, as mktorrent does; sockets, FIFOs and devices are skipped.
          const info = yield* stat(full)
          if (info.isDirectory()) yield* visit(full, [...prefix, entry])
          else if (info.isFile()) out.push({ path: [...prefix, entry], length: info.size })
        }
      })
    yield* visit(root, [])
    return out
  })

/** Hashes the concatenation of `segments` in pieces: each chunk is read and hashed on a worker. */
const hashSegments = (
  displayPath: string,
  segments: ReadonlyArray<Segment>,
  pieceLength: number,
  onProgress: ((progress: Progress) => void) | undefined
): Effect.Effect<Uint8Array, CreateError | HashError, Hasher.Hasher> =>
  Effect.gen(function* () {
    const hasher = yield* Hasher.Hasher
    const total = segments.reduce((sum, s) => sum + s.length, 0)
    const pieces = new Uint8Array(Math.ceil(total / pieceLength) * 20)
    // Chunks of whole pieces, about 8 MiB: one worker message per chunk, never per piece.
    const chunkLength = Math.max(pieceLength, Math.floor((8 * 1024 * 1024) / pieceLength) * pieceLength)
    const chunks: Array<{ readonly start: number; readonly ranges: Array<Hasher.FileRange> }> = []
    let current: { start: number; ranges: Array<Hasher.FileRange>; length: number } | undefined
    let offset = 0
    for (const segment of segments) {
      let done = 0
      while (done < segment.length) {
        if (current === undefined || current.length === chunkLength) {
          current = { start: offset, ranges: [], length: 0 }
          chunks.push(current)
        }
        const n = Math.min(segment.length - done, chunkLength - current.length)
        current.ranges.push({ path: segment.path, position: segment.position + done, length: n })
        current.length += n
        done += n
        offset += n
      }
    }
    let hashed = 0
    // Two chunks per worker in flight: one hashing, one queued behind it.
    yield* Effect.forEach(
      chunks,
      (chunk) =>
        Effect.gen(function* () {
          const digests = yield* hasher.digestRanges(chunk.ranges, pieceLength).pipe(
            Effect.catchTag("HashError", (error) =>
              error.code === undefined
                ? Effect.fail<CreateError | HashError>(error)
                : Effect.fail<CreateError | HashError>(
                    error.code === "CHANGED"
                      ? new CreateError({
                          reason: "Changed",
                          path: error.path ?? displayPath,
                          detail: "it shrank while it was being hashed",
                          cause: error
                        })
                      : ioError(
                          error.path ?? displayPath,
                          Object.assign(new Error(error.reason), { code: error.code })
                        )
                  )
            )
          )
          pieces.set(digests, (chunk.start / pieceLength) * 20)
          hashed += chunk.ranges.reduce((sum, r) => sum + r.length, 0)
          onProgress?.({ hashedBytes: hashed, totalBytes: total })
        }),
      { concurrency: Math.max(2, hasher.threads * 2), discard: true }
    )
    return pieces
  })

const finish = (
  path: string,
  fields: Omit<Metainfo.Fields, "createdBy" | "creationDate">,
  options: Options
): Effect.Effect<Metainfo.Metainfo, CreateError> => {
  const creationDate =
    options.creationDate === null ? undefined : (options.creationDate ?? Math.floor(Date.now() / 1000))
  const made = Metainfo.make({
    ...fields,
    createdBy: options.createdBy ?? "ezio/0.1.0",
    ...(creationDate !== undefined ? { creationDate } : {}),
    ...(options.trackers !== undefined ? { trackers: options.trackers } : {}),
    ...(options.comment !== undefined ? { comment: options.comment } : {}),
    ...(options.private !== undefined ? { private: options.private } : {}),
    ...(options.urlList !== undefined ? { urlList: options.urlList } : {})
  })
  return Either.match(made, {
    onLeft: (error) =>
      Effect.fail(new CreateError({ reason: "InvalidOption", path, detail: error.detail, cause: error })),
    onRight: Effect.succeed
  })
}

const checkPieceLength = (path: string, pieceLength: number) => {
  const problem = Metainfo.pieceLengthProblem(pieceLength)
  return problem === undefined
    ? Effect.void
    : Effect.fail(new CreateError({ reason: "InvalidOption", path, detail: problem }))
}

/**
 * A torrent of one file or of a directory's regular files (in byte order of their paths; empty
 * directories cannot be represented and are left out).
 *
 * @since 0.1.0
 * @category constructors
 */
export const fromPath = (
  path: string,
  options: Options = {}
): Effect.Effect<Metainfo.Metainfo, CreateError | HashError, Hasher.Hasher> =>
  Effect.gen(function* () {
    const info = yield* stat(path)
    const name = options.name ?? NPath.basename(NPath.resolve(path))
    let files: Array<{ path: Array<string>; length: number }>
    let single = false
    if (info.isFile()) {
      files = [{ path: [name], length: info.size }]
      single = true
    } else if (info.isDirectory()) {
      files = yield* walk(path)
    } else {
      return yield* new CreateError({
        reason: "Unsupported",
        path,
        detail: "it is neither a regular file nor a directory (use a raw image for block devices)"
      })
    }
    const total = files.reduce((sum, f) => sum + f.length, 0)
    if (total === 0)
      return yield* new CreateError({ reason: "Empty", path, detail: "there are no bytes to share" })
    const pieceLength = options.pieceLength ?? autoPieceLength(total)
    yield* checkPieceLength(path, pieceLength)
    const segments = single
      ? [{ path, position: 0, length: info.size }]
      : files.map((f) => ({ path: NPath.join(path, ...f.path), position: 0, length: f.length }))
    const pieces = yield* hashSegments(path, segments, pieceLength, options.onProgress)
    return yield* finish(path, { name, pieceLength, pieces, files, single }, options)
  })

/**
 * The used extents of an image: runs of `granularity`-sized blocks that are not all zero,
 * adjacent ones merged. Reads the image once.
 *
 * @since 0.1.0
 * @category constructors
 */
export const scanExtents = (
  path: string,
  options: { readonly granularity?: number; readonly size?: number } = {}
): Effect.Effect<Array<{ diskOffset: number; length: number }>, CreateError> =>
  Effect.gen(function* () {
    const granularity = options.granularity ?? 1024 * 1024
    if (granularity <= 0 || granularity % 4096 !== 0)
      return yield* new CreateError({
        reason: "InvalidOption",
        path,
        detail: `granularity ${granularity} is not a positive multiple of 4 KiB`
      })
    const size = options.size ?? (yield* imageSize(path))
    return yield* Effect.acquireUseRelease(
      Effect.try({ try: () => NFS.openSync(path, "r"), catch: (cause) => ioError(path, cause) }),
      (fd) =>
        Effect.try({
          try: () => {
            const chunk = Math.max(granularity, Math.floor((8 * 1024 * 1024) / granularity) * granularity)
            const buffer = Buffer.allocUnsafe(chunk)
            const zero = Buffer.alloc(granularity)
            const extents: Array<{ diskOffset: number; length: number }> = []
            for (let position = 0; position < size; position += chunk) {
              const want = Math.min(chunk, size - position)
              let got = 0
              while (got < want) {
                const n = NFS.readSync(fd, buffer, got, want - got, position + got)
                if (n === 0) throw Object.assign(new Error("the image ends early"), { code: "EIO" })
                got += n
              }
              for (let at = 0; at < want; at += granularity) {
                const n = Math.min(granularity, want - at)
                const isZero = buffer.compare(zero, 0, n, at, at + n) === 0
                if (isZero) continue
                const last = extents[extents.length - 1]
                if (last !== undefined && last.diskOffset + last.length === position + at) last.length += n
                else extents.push({ diskOffset: position + at, length: n })
              }
            }
            return extents
          },
          catch: (cause) => ioError(path, cause)
        }),
      (fd) => Effect.sync(() => NFS.closeSync(fd))
    )
  })

/** Size of an image file or a block device (whose `stat` size is 0). */
const imageSize = (path: string) =>
  Effect.try({
    try: () => {
      const fd = NFS.openSync(path, "r")
      try {
        const info = NFS.fstatSync(fd)
        if (info.isFile()) return info.size
        // Block devices: seek to the end (fs has no lseek; read the size from sysfs instead).
        const major = Math.floor(info.rdev / 256) & 0xfff
        const minor = (info.rdev & 0xff) | ((info.rdev >> 12) & 0xfff00)
        return Number(NFS.readFileSync(`/sys/dev/block/${major}:${minor}/size`, "utf8").trim()) * 512
      } finally {
        NFS.closeSync(fd)
      }
    },
    catch: (cause) => ioError(path, cause)
  })

/**
 * A torrent in EZIO's raw-image format: one file per used extent, named by its disk offset in
 * hex. The extents come from partclone's `torrent.info` (whose hashes are used as they are, with
 * 16 MiB pieces, as EZIO does) or from scanning the image for all-zero runs.
 *
 * @since 0.1.0
 * @category constructors
 */
export const fromRawImage = (
  path: string,
  options: RawOptions = {}
): Effect.Effect<Metainfo.Metainfo, CreateError | HashError, Hasher.Hasher> =>
  Effect.gen(function* () {
    const name = options.name ?? NPath.basename(path).replace(/\.(img|raw|bin)$/i, "")
    if (options.partcloneInfo !== undefined) {
      const parsed = RawImage.parsePartcloneInfo(options.partcloneInfo)
      if (Either.isLeft(parsed))
        return yield* new CreateError({
          reason: "InvalidOption",
          path,
          detail: parsed.left.detail,
          cause: parsed.left
        })
      const info = parsed.right
      const width = options.nameWidth ?? info.width
      const files = info.extents.map((e) => ({
        path: [RawImage.fileName(e.diskOffset, width)],
        length: e.length
      }))
      let pieces = info.pieceHashes
      const pieceLength = RawImage.partclonePieceLength
      if (pieces.length === 0) {
        // An info file without sha1 lines (partclone -t without hashing): hash the extents here.
        const segments = info.extents.map((e) => ({ path, position: e.diskOffset, length: e.length }))
        pieces = yield* hashSegments(path, segments, pieceLength, options.onProgress)
      }
      return yield* finish(path, { name, pieceLength, pieces, files }, options)
    }
    const size = yield* imageSize(path)
    const extents = yield* scanExtents(path, {
      ...(options.granularity !== undefined ? { granularity: options.granularity } : {}),
      size
    })
    if (extents.length === 0)
      return yield* new CreateError({
        reason: "Empty",
        path,
        detail: "the image is all zeros: there is nothing to deploy"
      })
    const total = extents.reduce((sum, e) => sum + e.length, 0)
    const pieceLength = options.pieceLength ?? autoPieceLength(total)
    yield* checkPieceLength(path, pieceLength)
    const width = options.nameWidth ?? 16
    const files = extents.map((e) => ({ path: [RawImage.fileName(e.diskOffset, width)], length: e.length }))
    const segments = extents.map((e) => ({ path, position: e.diskOffset, length: e.length }))
    const pieces = yield* hashSegments(path, segments, pieceLength, options.onProgress)
    return yield* finish(path, { name, pieceLength, pieces, files }, options)
  })
