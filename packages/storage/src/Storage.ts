/**
 * A torrent's storage: maps (piece, offset, length) onto spans of a directory's files, a raw image
 * or block device (EZIO's format, each file at its disk offset), or memory, and reads into or
 * writes from caller-supplied buffers (pool blocks) with positional, vectored I/O.
 *
 * @since 0.1.0
 */
import * as NFS from "node:fs"
import * as NPath from "node:path"
import * as Context from "effect/Context"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import type * as Scope from "effect/Scope"
import * as FileIo from "./FileIo.js"
import { call, callVoid, type Handle, syncDirectories, vectored, vectoredCallback } from "./internal/io.js"
import { type Read, readWrite, type Write } from "./internal/request.js"
import * as Layout from "./Layout.js"
import { StorageError } from "./StorageError.js"

/**
 * When written bytes are forced to stable storage:
 * - `"none"`: never by us (the OS writes its cache back when it likes);
 * - `"piece"`: `fdatasync` of a piece's files in `flushPiece`, before the piece is reported complete;
 * - `"close"` (default): every written file is synced when the storage closes (or a handle is evicted).
 *
 * In every mode a write completes only after `pwritev` returned for all its bytes, so a piece
 * reported complete is in the target (visible to any reader, surviving a crash of this process).
 *
 * @since 0.1.0
 * @category models
 */
export type Durability = "none" | "piece" | "close"

/**
 * @since 0.1.0
 * @category models
 */
export type Mode = "read" | "readwrite"

/**
 * @since 0.1.0
 * @category models
 */
export interface StorageService {
  readonly layout: Layout.Layout
  readonly kind: "directory" | "raw" | "memory"
  /** Where the data lives: a directory, an image or device path, or "memory". */
  readonly location: string
  /**
   * Fills `buffers`, in order, with the bytes at `offset` in `piece`; the request must lie within
   * the piece. One vectored syscall per file the range touches.
   */
  readonly read: Read
  /** Writes `buffers`, in order, at `offset` in `piece`. Completes once every byte reached the target. */
  readonly write: Write
  /** Makes a finished piece durable according to the storage's `Durability` (a no-op unless "piece"). */
  readonly flushPiece: (piece: number) => Effect.Effect<void, StorageError>
  /**
   * Forces everything written so far to stable storage, whatever the durability: `fdatasync` of
   * every file written, and `fsync` of the directory of each file this storage created.
   */
  readonly sync: Effect.Effect<void, StorageError>
  /** Closes open file handles (after syncing them unless durability is "none"); they reopen on demand. */
  readonly releaseFiles: Effect.Effect<void, StorageError>
}

export type { Read, Write } from "./internal/request.js"

/**
 * The storage of the torrent an app works on. Apps serving several torrents make one storage per
 * torrent with `makeDirectory` / `makeRaw` / `makeMemory` instead.
 *
 * @since 0.1.0
 * @category tags
 */
export class Storage extends Context.Tag("@ezio/storage/Storage")<Storage, StorageService>() {}

/**
 * @since 0.1.0
 * @category models
 */
export interface DirectoryOptions {
  readonly layout: Layout.Layout
  readonly root: string
  /** Default "readwrite". "read" opens files read-only (seeding from read-only media). */
  readonly mode?: Mode
  /** Allocate every file's blocks on first write instead of leaving them sparse. Default false. */
  readonly preallocate?: boolean
  readonly durability?: Durability
  /** The bound of the open-handle cache (least recently used handles close first). Default 64. */
  readonly maxOpenFiles?: number
  readonly fileIo?: FileIo.FileIo
}

/**
 * @since 0.1.0
 * @category models
 */
export interface RawOptions {
  readonly layout: Layout.Layout
  /** An image file or a block device. Each torrent file lives at its `diskOffset`. */
  readonly path: string
  readonly mode?: Mode
  readonly durability?: Durability
  /**
   * For a regular image file in "readwrite" mode: create it, or extend it, to the end of the last
   * extent. Never applies to block devices, which are never truncated. Default false: a target
   * smaller than the torrent needs is refused.
   */
  readonly grow?: boolean
  readonly fileIo?: FileIo.FileIo
}

const O = NFS.constants

/** Joins a torrent path under `root`, refusing anything that would leave it (defence in depth). */
const safeJoin = (root: string, components: ReadonlyArray<string>): string | StorageError => {
  const bad = components.find(
    (c) =>
      c.length === 0 || c === "." || c === ".." || c.includes("/") || c.includes("\\") || c.includes("\0")
  )
  const joined = NPath.resolve(root, ...components)
  if (bad !== undefined || components.length === 0 || !joined.startsWith(root + NPath.sep)) {
    return new StorageError({
      reason: "UnsafePath",
      operation: "open",
      path: components.join("/"),
      detail: `refusing a path outside ${root}`
    })
  }
  return joined
}

const ZEROS = new Uint8Array(1024 * 1024)

/**
 * A directory target: single- and multi-file torrents, folders and files created as needed,
 * zero-length files created at once (readwrite), sparse files unless `preallocate`, and a bounded
 * LRU cache of open handles, all closed when the scope closes.
 *
 * @since 0.1.0
 * @category constructors
 */
export const makeDirectory = (
  options: DirectoryOptions
): Effect.Effect<StorageService, StorageError, Scope.Scope> =>
  Effect.gen(function* () {
    const { layout } = options
    const io = options.fileIo ?? FileIo.node
    const mode = options.mode ?? "readwrite"
    const durability = options.durability ?? "close"
    const maxOpen = Math.max(1, options.maxOpenFiles ?? 64)
    const root = NPath.resolve(options.root)
    const paths: Array<string> = []
    for (const file of layout.files) {
      const joined = safeJoin(root, file.path)
      if (joined instanceof StorageError) return yield* joined
      paths.push(joined)
    }

    // Errors from closing evicted handles happen in callbacks; they surface at the next sync or close.
    const lateErrors: Array<StorageError> = []
    const cache = new Map<number, Handle>() // insertion order = least recently used first
    const lock = yield* Effect.makeSemaphore(1)

    const closeHandle = (handle: Handle, fd: number) => {
      let closed = false
      return () => {
        if (closed) return
        closed = true
        const close = () =>
          io.close(fd, (error) => {
            if (error !== null)
              lateErrors.push(
                new StorageError({ reason: "Io", operation: "close", path: handle.path, cause: error })
              )
          })
        if (handle.dirty && durability !== "none") {
          io.fdatasync(fd, (error) => {
            if (error !== null)
              lateErrors.push(
                new StorageError({ reason: "Io", operation: "sync", path: handle.path, cause: error })
              )
            handle.dirty = false
            close()
          })
        } else close()
      }
    }

    const retire = (file: number, handle: Handle) => {
      if (cache.get(file) === handle) cache.delete(file)
      handle.retired = true
      if (handle.refs === 0) handle.close()
    }

    const cached = (file: number): Handle | undefined => {
      const handle = cache.get(file)
      if (handle !== undefined) {
        cache.delete(file)
        cache.set(file, handle)
      }
      return handle
    }

    // Directories holding files (or directories) this storage created: `sync` fsyncs them.
    const newEntries = new Set<string>()
    const noteCreated = (path: string) => {
      for (let dir = NPath.dirname(path); ; dir = NPath.dirname(dir)) {
        newEntries.add(dir)
        if (dir === root || dir.length <= root.length) break
      }
    }

    const openFd = (file: number, forWrite: boolean): Effect.Effect<number, StorageError> => {
      const path = paths[file]!
      const open = (flags: number) => call<number>("open", path, (cb) => io.open(path, flags, 0o644, cb))
      if (mode === "read") return open(O.O_RDONLY)
      if (!forWrite) return open(O.O_RDWR)
      // Without O_CREAT first, so a file this run creates is known (its directory needs an fsync).
      return open(O.O_RDWR).pipe(
        Effect.catchIf(
          (error) => error.reason === "NotFound",
          () =>
            open(O.O_RDWR | O.O_CREAT).pipe(
              Effect.catchIf(
                (error) => error.reason === "NotFound",
                () =>
                  Effect.zipRight(
                    callVoid("mkdir", NPath.dirname(path), (cb) => io.mkdir(NPath.dirname(path), cb)),
                    open(O.O_RDWR | O.O_CREAT)
                  )
              ),
              Effect.tap(() => Effect.sync(() => noteCreated(path)))
            )
        )
      )
    }

    const open = (file: number, forWrite: boolean): Effect.Effect<Handle, StorageError> =>
      lock.withPermits(1)(
        Effect.suspend(() => {
          const existing = cached(file)
          if (existing !== undefined) return Effect.succeed(existing)
          return Effect.map(openFd(file, forWrite), (fd) => {
            const handle: Handle = {
              fd,
              path: paths[file]!,
              refs: 0,
              retired: false,
              dirty: false,
              sized: false,
              close: () => {}
            }
            handle.close = closeHandle(handle, fd)
            cache.set(file, handle)
            for (const [oldest, h] of cache) {
              if (cache.size <= maxOpen) break
              retire(oldest, h)
            }
            return handle
          })
        })
      )

    // Before a file's first write: give it its full length, sparse or allocated.
    const ensureSized = (file: number, handle: Handle): Effect.Effect<void, StorageError> => {
      if (handle.sized) return Effect.void
      const length = layout.files[file]!.length
      return call<NFS.Stats>("stat", handle.path, (cb) => io.fstat(handle.fd, cb)).pipe(
        Effect.flatMap((stats) => {
          if (stats.size >= length) return Effect.void
          if (options.preallocate === true) {
            const chunks: Array<Effect.Effect<void, StorageError>> = []
            for (let at = stats.size; at < length; at += ZEROS.length) {
              chunks.push(
                vectored(
                  io,
                  "write",
                  handle,
                  [ZEROS.subarray(0, Math.min(ZEROS.length, length - at))],
                  at,
                  undefined
                )
              )
            }
            return Effect.all(chunks, { discard: true })
          }
          return callVoid("truncate", handle.path, (cb) => io.ftruncate(handle.fd, length, cb))
        }),
        Effect.tap(() => Effect.sync(() => (handle.sized = true)))
      )
    }

    const perSpan =
      (kind: "read" | "write", piece: number) =>
      (span: Layout.Span, buffers: ReadonlyArray<Uint8Array>): Effect.Effect<void, StorageError> => {
        const forWrite = kind === "write"
        const handle = cached(span.file)
        if (handle !== undefined && (!forWrite || handle.sized)) {
          return vectored(io, kind, handle, buffers, span.fileOffset, piece)
        }
        const opened = Effect.mapError(open(span.file, forWrite), (error) =>
          // `cause` is not an own enumerable field of an Effect error: carried over by name (the errno).
          error.piece === undefined ? new StorageError({ ...error, piece, cause: error.cause }) : error
        )
        return Effect.flatMap(opened, (h) =>
          forWrite
            ? Effect.zipRight(
                ensureSized(span.file, h),
                vectored(io, kind, h, buffers, span.fileOffset, piece)
              )
            : vectored(io, kind, h, buffers, span.fileOffset, piece)
        )
      }

    const syncHandles = (handles: Iterable<Handle>) =>
      Effect.forEach(
        [...handles].filter((h) => h.dirty),
        (h) =>
          Effect.tap(
            callVoid("sync", h.path, (cb) => io.fdatasync(h.fd, cb)),
            () => Effect.sync(() => (h.dirty = false))
          ),
        { discard: true }
      )

    const surfaceLateErrors = Effect.suspend(() => {
      const error = lateErrors.shift()
      return error === undefined ? Effect.void : Effect.fail(error)
    })

    const sync = Effect.zipRight(
      Effect.suspend(() => syncHandles(cache.values())),
      Effect.zipRight(surfaceLateErrors, syncDirectories(io, newEntries))
    )

    const releaseFiles = Effect.zipRight(
      Effect.suspend(() => {
        const handles = [...cache]
        return Effect.zipRight(
          durability === "none"
            ? Effect.void
            : Effect.zipRight(syncHandles(handles.map(([, h]) => h)), syncDirectories(io, newEntries)),
          Effect.sync(() => handles.forEach(([file, h]) => retire(file, h)))
        )
      }),
      surfaceLateErrors
    )

    // Zero-length files have no pieces, so no write would ever create them.
    if (mode === "readwrite") {
      for (const [file, entry] of layout.files.entries()) {
        if (entry.length !== 0) continue
        const fd = yield* openFd(file, true)
        yield* callVoid("close", paths[file]!, (cb) => io.close(fd, cb))
      }
    }

    yield* Effect.addFinalizer(() =>
      releaseFiles.pipe(
        Effect.catchAll((error) => Effect.logError(`storage ${root}: ${error.message}`)),
        // Wait for handles still busy with a syscall to close (their callbacks close them).
        Effect.zipRight(
          Effect.suspend(() =>
            Effect.forEach(
              lateErrors.splice(0),
              (error) => Effect.logError(`storage ${root}: ${error.message}`),
              {
                discard: true
              }
            )
          )
        )
      )
    )

    return {
      layout,
      kind: "directory",
      location: root,
      ...readWrite(layout, root, perSpan, (kind, piece, span, buffers, done) => {
        const handle = cached(span.file)
        if (handle === undefined || (kind === "write" && !handle.sized)) return false
        vectoredCallback(io, kind, handle, buffers, span.fileOffset, piece, done)
        return true
      }),
      flushPiece: (piece) =>
        durability !== "piece"
          ? Effect.void
          : Effect.suspend(() =>
              syncHandles(
                Layout.filesOfPiece(layout, piece)
                  .map((file) => cache.get(file))
                  .filter((h): h is Handle => h !== undefined)
              )
            ),
      sync,
      releaseFiles
    } satisfies StorageService
  })

/** A block device's size: /sys/dev/block/MAJOR:MINOR/size counts 512-byte sectors. */
const blockDeviceSize = (io: FileIo.FileIo, path: string, rdev: number) => {
  const major = ((rdev >> 8) & 0xfff) | (Math.floor(rdev / 2 ** 32) & ~0xfff)
  const minor = (rdev & 0xff) | ((rdev >> 12) & 0xfff00)
  const sys = `/sys/dev/block/${major}:${minor}/size`
  return call<string>("stat", path, (cb) => io.readText(sys, cb)).pipe(
    Effect.map((text) => Number(text.trim()) * 512)
  )
}

/**
 * A raw target in EZIO's format: one image file or block device; each torrent file is written at
 * its disk offset (the gaps, unused file-system blocks, are never touched). A target smaller than
 * the last extent's end is refused when opened; block devices are never truncated.
 *
 * @since 0.1.0
 * @category constructors
 */
export const makeRaw = (options: RawOptions): Effect.Effect<StorageService, StorageError, Scope.Scope> =>
  Effect.gen(function* () {
    const { layout } = options
    const io = options.fileIo ?? FileIo.node
    const mode = options.mode ?? "readwrite"
    const durability = options.durability ?? "close"
    const path = NPath.resolve(options.path)
    const newEntries = new Set<string>()
    const openAt = (flags: number) => call<number>("open", path, (cb) => io.open(path, flags, 0o644, cb))
    const opening =
      mode === "read"
        ? openAt(O.O_RDONLY)
        : options.grow !== true
          ? openAt(O.O_RDWR)
          : // Without O_CREAT first, so a new image is known (its directory needs an fsync).
            openAt(O.O_RDWR).pipe(
              Effect.catchIf(
                (error) => error.reason === "NotFound",
                () =>
                  Effect.tap(openAt(O.O_RDWR | O.O_CREAT), () =>
                    Effect.sync(() => newEntries.add(NPath.dirname(path)))
                  )
              )
            )
    const fd = yield* Effect.acquireRelease(opening, (fd) =>
      Effect.zipRight(
        durability === "none" || mode === "read"
          ? Effect.void
          : Effect.zipRight(
              callVoid("sync", path, (cb) => io.fdatasync(fd, cb)),
              syncDirectories(io, newEntries)
            ).pipe(Effect.catchAll((error) => Effect.logError(`storage ${path}: ${error.message}`))),
        callVoid("close", path, (cb) => io.close(fd, cb)).pipe(
          Effect.catchAll((error) => Effect.logError(`storage ${path}: ${error.message}`))
        )
      )
    )
    const stats = yield* call<NFS.Stats>("stat", path, (cb) => io.fstat(fd, cb))
    const isDevice = stats.isBlockDevice()
    const size = isDevice ? yield* blockDeviceSize(io, path, stats.rdev) : stats.size
    const need = Layout.diskEnd(layout)
    if (size < need) {
      if (!isDevice && stats.isFile() && mode === "readwrite" && options.grow === true) {
        yield* callVoid("truncate", path, (cb) => io.ftruncate(fd, need, cb))
      } else {
        return yield* new StorageError({
          reason: "TooSmall",
          operation: "open",
          path,
          detail: `the ${isDevice ? "device" : "image"} has ${size} bytes; the torrent's last extent ends at byte ${need}${
            isDevice || mode === "read" ? "" : " (pass grow to extend an image file)"
          }`
        })
      }
    }
    const handle: Handle = { fd, path, refs: 0, retired: false, dirty: false, sized: true, close: () => {} }
    const diskOffsets = layout.files.map((file) => file.diskOffset ?? file.offset)
    const perSpan =
      (kind: "read" | "write", piece: number) => (span: Layout.Span, buffers: ReadonlyArray<Uint8Array>) =>
        vectored(io, kind, handle, buffers, diskOffsets[span.file]! + span.fileOffset, piece)
    const sync = Effect.zipRight(
      Effect.suspend(() =>
        handle.dirty
          ? Effect.tap(
              callVoid("sync", path, (cb) => io.fdatasync(fd, cb)),
              () => Effect.sync(() => (handle.dirty = false))
            )
          : Effect.void
      ),
      syncDirectories(io, newEntries)
    )
    return {
      layout,
      kind: "raw",
      location: path,
      ...readWrite(layout, path, perSpan, (kind, piece, span, buffers, done) => {
        vectoredCallback(io, kind, handle, buffers, diskOffsets[span.file]! + span.fileOffset, piece, done)
        return true
      }),
      flushPiece: () => (durability === "piece" ? sync : Effect.void),
      sync,
      releaseFiles: Effect.void
    } satisfies StorageService
  })

/**
 * Memory: for tests, and for Effect apps that want a torrent's data in RAM. Raw layouts are laid
 * out at their disk offsets. Pass `bytes` to serve existing data.
 *
 * @since 0.1.0
 * @category constructors
 */
export const makeMemory = (options: {
  readonly layout: Layout.Layout
  readonly bytes?: Uint8Array
}): Effect.Effect<StorageService & { readonly bytes: Uint8Array }, StorageError> =>
  Effect.suspend(() => {
    const { layout } = options
    const need = Layout.diskEnd(layout)
    const bytes = options.bytes ?? new Uint8Array(need)
    if (bytes.length < need) {
      return Effect.fail(
        new StorageError({
          reason: "TooSmall",
          operation: "open",
          path: "memory",
          detail: `${bytes.length} bytes; the torrent needs ${need}`
        })
      )
    }
    const starts = layout.files.map((file) => file.diskOffset ?? file.offset)
    const perSpan =
      (kind: "read" | "write") =>
      (span: Layout.Span, buffers: ReadonlyArray<Uint8Array>): Effect.Effect<void, StorageError> =>
        Effect.sync(() => {
          let at = starts[span.file]! + span.fileOffset
          for (const buffer of buffers) {
            if (kind === "read") buffer.set(bytes.subarray(at, at + buffer.length))
            else bytes.set(buffer, at)
            at += buffer.length
          }
        })
    return Effect.succeed({
      layout,
      kind: "memory" as const,
      location: "memory",
      bytes,
      ...readWrite(layout, "memory", perSpan),
      flushPiece: () => Effect.void,
      sync: Effect.void,
      releaseFiles: Effect.void
    })
  })

/**
 * @since 0.1.0
 * @category layers
 */
export const layerDirectory = (options: DirectoryOptions): Layer.Layer<Storage, StorageError> =>
  Layer.scoped(Storage, makeDirectory(options))

/**
 * @since 0.1.0
 * @category layers
 */
export const layerRaw = (options: RawOptions): Layer.Layer<Storage, StorageError> =>
  Layer.scoped(Storage, makeRaw(options))

/**
 * @since 0.1.0
 * @category layers
 */
export const layerMemory = (options: {
  readonly layout: Layout.Layout
  readonly bytes?: Uint8Array
}): Layer.Layer<Storage, StorageError> => Layer.effect(Storage, makeMemory(options))
