/**
 * The few file-system calls storage makes, callback-style as `node:fs` has them, so the hot path
 * pays one Effect per request and tests can inject faults (ENOSPC, EIO, short reads) on chosen calls.
 *
 * @since 0.1.0
 */
import * as NFS from "node:fs"

type Callback<A> = (error: NodeJS.ErrnoException | null, value: A) => void

/**
 * @since 0.1.0
 * @category models
 */
export interface FileIo {
  readonly open: (path: string, flags: number, mode: number, callback: Callback<number>) => void
  readonly close: (fd: number, callback: (error: NodeJS.ErrnoException | null) => void) => void
  readonly readv: (
    fd: number,
    buffers: ReadonlyArray<Uint8Array>,
    position: number,
    callback: Callback<number>
  ) => void
  readonly writev: (
    fd: number,
    buffers: ReadonlyArray<Uint8Array>,
    position: number,
    callback: Callback<number>
  ) => void
  readonly fdatasync: (fd: number, callback: (error: NodeJS.ErrnoException | null) => void) => void
  /** A full fsync: what makes a directory's new entries durable. */
  readonly fsync: (fd: number, callback: (error: NodeJS.ErrnoException | null) => void) => void
  readonly fstat: (fd: number, callback: Callback<NFS.Stats>) => void
  readonly ftruncate: (
    fd: number,
    length: number,
    callback: (error: NodeJS.ErrnoException | null) => void
  ) => void
  readonly mkdir: (path: string, callback: (error: NodeJS.ErrnoException | null) => void) => void
  /** Reads a small text file (used for a block device's size under /sys). */
  readonly readText: (path: string, callback: Callback<string>) => void
}

/**
 * `node:fs`, positional and vectored (preadv/pwritev): no seek-then-read races, no copies.
 *
 * @since 0.1.0
 * @category constructors
 */
export const node: FileIo = {
  open: (path, flags, mode, callback) => NFS.open(path, flags, mode, callback),
  close: (fd, callback) => NFS.close(fd, callback),
  readv: (fd, buffers, position, callback) => NFS.readv(fd, buffers as Array<Uint8Array>, position, callback),
  writev: (fd, buffers, position, callback) =>
    NFS.writev(fd, buffers as Array<Uint8Array>, position, callback),
  fdatasync: (fd, callback) => NFS.fdatasync(fd, callback),
  fsync: (fd, callback) => NFS.fsync(fd, callback),
  fstat: (fd, callback) => NFS.fstat(fd, callback),
  ftruncate: (fd, length, callback) => NFS.ftruncate(fd, length, callback),
  mkdir: (path, callback) => NFS.mkdir(path, { recursive: true }, (error) => callback(error)),
  readText: (path, callback) => NFS.readFile(path, "utf8", callback)
}

/**
 * A `FileIo` that fails chosen calls: `fail(call, n)` decides, for the n-th call (from 0) of each
 * kind, whether it fails and with which errno code (e.g. "ENOSPC", "EIO"), or returns a short
 * count ("short") for readv/writev. For fault-injection tests.
 *
 * @since 0.1.0
 * @category constructors
 */
export const faulty = (
  decide: (call: keyof FileIo, n: number) => string | "short" | undefined,
  base: FileIo = node
): FileIo => {
  const counts = new Map<string, number>()
  const next = (call: keyof FileIo) => {
    const n = counts.get(call) ?? 0
    counts.set(call, n + 1)
    return decide(call, n)
  }
  const errno = (code: string, syscall: string): NodeJS.ErrnoException =>
    Object.assign(new Error(`${code}: injected fault, ${syscall}`), { code, syscall })
  const simple =
    <Args extends Array<unknown>>(call: keyof FileIo, run: (...args: Args) => void) =>
    (...args: Args) => {
      const fault = next(call)
      const callback = args[args.length - 1] as (error: NodeJS.ErrnoException | null, value?: unknown) => void
      if (fault !== undefined && fault !== "short")
        return process.nextTick(() => callback(errno(fault, call)))
      run(...args)
    }
  const vectored =
    (call: "readv" | "writev") =>
    (fd: number, buffers: ReadonlyArray<Uint8Array>, position: number, callback: Callback<number>) => {
      const fault = next(call)
      if (fault === "short") {
        // Only the first half of the first buffer gets through.
        const first = buffers[0]!
        const half = first.subarray(0, Math.max(0, Math.floor(first.length / 2)))
        return base[call](fd, [half], position, callback)
      }
      if (fault !== undefined) return process.nextTick(() => callback(errno(fault, call), 0))
      base[call](fd, buffers, position, callback)
    }
  return {
    open: simple("open", base.open),
    close: simple("close", base.close),
    readv: vectored("readv"),
    writev: vectored("writev"),
    fdatasync: simple("fdatasync", base.fdatasync),
    fsync: simple("fsync", base.fsync),
    fstat: simple("fstat", base.fstat),
    ftruncate: simple("ftruncate", base.ftruncate),
    mkdir: simple("mkdir", base.mkdir),
    readText: simple("readText", base.readText)
  }
}
