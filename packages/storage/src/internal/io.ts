/** @internal */
import * as Effect from "effect/Effect"
import type { FileIo } from "../FileIo.js"
import { fromErrno, type Operation, StorageError } from "../StorageError.js"

/**
 * An open file descriptor shared by concurrent requests. `refs` counts syscalls in flight, so an
 * evicted handle is closed only once the last one returns.
 *
 * @internal
 */
export interface Handle {
  readonly fd: number
  readonly path: string
  refs: number
  /** Evicted or released: close when `refs` reaches 0. */
  retired: boolean
  /** Written to since the last sync. */
  dirty: boolean
  /** Extended to its full length once (sparse), before its first write. */
  sized: boolean
  /** Closes the descriptor (idempotent); set by whoever owns the handle. */
  close: () => void
}

/** Drops `n` bytes from the front of a list of views (after a partial readv/writev). */
const advance = (buffers: ReadonlyArray<Uint8Array>, n: number): Array<Uint8Array> => {
  const out: Array<Uint8Array> = []
  let skip = n
  for (const buffer of buffers) {
    if (skip >= buffer.length) {
      skip -= buffer.length
      continue
    }
    out.push(skip === 0 ? buffer : buffer.subarray(skip))
    skip = 0
  }
  return out
}

/**
 * Reads or writes every byte of `buffers` at `position`, re-issuing the syscall after a partial
 * transfer, all inside one callback chain; `done` is called once, with the error if any.
 *
 * @internal
 */
export const vectoredCallback = (
  io: FileIo,
  kind: "read" | "write",
  handle: Handle,
  buffers: ReadonlyArray<Uint8Array>,
  position: number,
  piece: number | undefined,
  done: (error: StorageError | undefined) => void
): void => {
  let remaining = 0
  for (const buffer of buffers) remaining += buffer.length
  if (remaining === 0) return done(undefined)
  handle.refs++
  if (kind === "write") handle.dirty = true
  let list = buffers
  let at = position
  const finish = (error: StorageError | undefined) => {
    handle.refs--
    if (handle.retired && handle.refs === 0) handle.close()
    done(error)
  }
  const where = () => (piece === undefined ? { offset: at } : { piece, offset: at })
  const step = () =>
    (kind === "read" ? io.readv : io.writev)(handle.fd, list, at, (error, n) => {
      if (error !== null) return finish(fromErrno(error, kind, handle.path, where()))
      remaining -= n
      at += n
      if (remaining === 0) return finish(undefined)
      if (n === 0) {
        return finish(
          new StorageError({
            reason: kind === "read" ? "ShortRead" : "Io",
            operation: kind,
            path: handle.path,
            ...where(),
            detail: `${remaining} byte(s) not ${kind === "read" ? "read" : "written"}`
          })
        )
      }
      list = advance(list, n)
      step()
    })
  step()
}

/**
 * `vectoredCallback` as one Effect per request (not per syscall).
 *
 * Uninterruptible on purpose: the kernel keeps writing into the buffers until the call returns,
 * so an interrupted caller must not get its (pool) blocks back before then.
 *
 * @internal
 */
export const vectored = (
  io: FileIo,
  kind: "read" | "write",
  handle: Handle,
  buffers: ReadonlyArray<Uint8Array>,
  position: number,
  piece: number | undefined
): Effect.Effect<void, StorageError> =>
  Effect.uninterruptible(
    Effect.async<void, StorageError>((resume) =>
      vectoredCallback(io, kind, handle, buffers, position, piece, (error) =>
        resume(error === undefined ? Effect.void : Effect.fail(error))
      )
    )
  )

/** @internal */
export const call = <A>(
  operation: Operation,
  path: string,
  run: (callback: (error: NodeJS.ErrnoException | null, value: A) => void) => void
): Effect.Effect<A, StorageError> =>
  Effect.uninterruptible(
    Effect.async<A, StorageError>((resume) => {
      try {
        run((error, value) =>
          resume(error === null ? Effect.succeed(value) : Effect.fail(fromErrno(error, operation, path)))
        )
      } catch (cause) {
        // node:fs validates its arguments synchronously (a length past 2^53 throws a RangeError):
        // an input no file can hold, not a bug to die on.
        resume(
          Effect.fail(
            new StorageError({
              reason: "OutOfRange",
              operation,
              path,
              cause,
              detail: cause instanceof Error ? cause.message : String(cause)
            })
          )
        )
      }
    })
  )

/** @internal */
export const callVoid = (
  operation: Operation,
  path: string,
  run: (callback: (error: NodeJS.ErrnoException | null) => void) => void
): Effect.Effect<void, StorageError> =>
  call<void>(operation, path, (callback) => run((error) => callback(error, undefined)))

/**
 * `fsync` of each directory (open read-only, fsync, close): what makes the entries of files
 * created in them durable, which `fdatasync` of the files themselves does not.
 *
 * @internal
 */
export const syncDirectories = (io: FileIo, directories: Set<string>): Effect.Effect<void, StorageError> =>
  Effect.suspend(() => {
    const list = [...directories]
    return Effect.forEach(
      list,
      (directory) =>
        Effect.flatMap(
          call<number>("open", directory, (cb) => io.open(directory, 0, 0, cb)),
          (fd) =>
            callVoid("sync", directory, (cb) => io.fsync(fd, cb)).pipe(
              // A failed close of a read-only directory descriptor loses nothing.
              Effect.ensuring(Effect.ignore(callVoid("close", directory, (cb) => io.close(fd, cb)))),
              Effect.tap(() => Effect.sync(() => directories.delete(directory)))
            )
        ),
      { discard: true }
    )
  })
