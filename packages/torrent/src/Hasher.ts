/**
 * Piece hashing off the main thread: a pool of worker threads that read pool blocks in place
 * (views over SharedArrayBuffer slabs are shared with a worker, never copied or transferred), so
 * both cores work while the event loop keeps serving peers.
 *
 * @since 0.1.0
 */
import * as NCrypto from "node:crypto"
import * as NFS from "node:fs"
import * as NOS from "node:os"
import { Worker } from "node:worker_threads"
import * as Context from "effect/Context"
import * as Data from "effect/Data"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import type * as Scope from "effect/Scope"

/**
 * @since 0.1.0
 * @category models
 */
export type Algorithm = "sha1" | "sha256"

/**
 * @since 0.1.0
 * @category models
 */
export interface Digest {
  /** The hash of everything passed to the job. */
  readonly digest: Uint8Array
  /** With `blockHashes`: SHA-256 of each `blockSize` run (BEP 52 leaf hashes), in order. */
  readonly blocks: ReadonlyArray<Uint8Array>
}

/**
 * An incremental hash for data that arrives in several chunks (a piece larger than what one
 * request holds). Chunks must be whole multiples of the block size, except the last.
 *
 * @since 0.1.0
 * @category models
 */
export interface Job {
  readonly update: (views: ReadonlyArray<Uint8Array>) => Effect.Effect<ReadonlyArray<Uint8Array>, HashError>
  readonly final: (views: ReadonlyArray<Uint8Array>) => Effect.Effect<Digest, HashError>
}

/**
 * @since 0.1.0
 * @category models
 */
export interface JobOptions {
  readonly algorithm?: Algorithm
  /** Also return SHA-256 of each `blockSize` run of the data (v2 torrents). */
  readonly blockHashes?: boolean
  readonly blockSize?: number
}

/**
 * @since 0.1.0
 * @category errors
 */
export class HashError extends Data.TaggedError("HashError")<{
  readonly reason: string
  /** For `digestRanges`: the file being read and the errno code, when reading failed. */
  readonly path?: string
  readonly code?: string
}> {
  override get message(): string {
    return `hashing failed: ${this.reason}`
  }
}

/**
 * @since 0.1.0
 * @category models
 */
export interface FileRange {
  readonly path: string
  readonly position: number
  readonly length: number
}

/**
 * @since 0.1.0
 * @category models
 */
export interface HasherService {
  readonly threads: number
  /** Hashes the concatenation of `views` in one request. */
  readonly digest: (
    views: ReadonlyArray<Uint8Array>,
    options?: JobOptions
  ) => Effect.Effect<Digest, HashError>
  /**
   * Hashes `view` as consecutive pieces of `pieceLength` bytes (the last may be short) in one
   * request, returning the digests back to back (20 bytes each for SHA-1).
   */
  readonly digestPieces: (
    view: Uint8Array,
    pieceLength: number,
    algorithm?: Algorithm
  ) => Effect.Effect<Uint8Array, HashError>
  /**
   * Reads the file ranges (in order, concatenated) on a worker and hashes them as consecutive
   * pieces: torrent creation, where reading on the workers keeps the main thread free.
   */
  readonly digestRanges: (
    ranges: ReadonlyArray<FileRange>,
    pieceLength: number,
    algorithm?: Algorithm
  ) => Effect.Effect<Uint8Array, HashError>
  /** Starts an incremental job; all its chunks go to the same worker. */
  readonly begin: (options?: JobOptions) => Job
}

/**
 * @since 0.1.0
 * @category tags
 */
export class Hasher extends Context.Tag("@ezio/torrent/Hasher")<Hasher, HasherService>() {}

const workerUrl = new URL("./internal/hashWorker.mjs", import.meta.url)

/**
 * The bundled `ezio` (npm bin and single executable) has no worker file beside it: its bundle puts
 * the worker's code, as a CommonJS script, on globalThis under this key.
 */
const embeddedWorker = Symbol.for("ezio.hashWorkerSource")

const newWorker = (): Worker => {
  const source = (globalThis as { readonly [embeddedWorker]?: unknown })[embeddedWorker]
  return typeof source === "string" ? new Worker(source, { eval: true }) : new Worker(workerUrl)
}

/** Views the worker can read in place; anything else is copied into shared memory first. */
const shareable = (views: ReadonlyArray<Uint8Array>): Array<Uint8Array> =>
  views.map((view) => {
    if (view.buffer instanceof SharedArrayBuffer) return view
    const copy = new Uint8Array(new SharedArrayBuffer(view.length))
    copy.set(view)
    return copy
  })

interface Answer {
  readonly digest?: Uint8Array
  readonly blocks?: Array<Uint8Array>
  readonly error?: string
  readonly code?: string
  readonly path?: string
}

interface Pending {
  readonly resolve: (answer: Answer) => void
}

interface Thread {
  worker: Worker
  inFlight: number
  readonly pending: Map<number, Pending>
}

/**
 * A pool of `threads` hashing workers (default: one per core), terminated when the scope closes.
 *
 * @since 0.1.0
 * @category constructors
 */
export const make = (
  options: { readonly threads?: number } = {}
): Effect.Effect<HasherService, never, Scope.Scope> =>
  Effect.gen(function* () {
    const threads = Math.max(1, options.threads ?? NOS.availableParallelism())
    let nextId = 0
    let closed = false

    const spawn = (thread: Thread | undefined): Thread => {
      const worker = newWorker()
      const t: Thread = thread ?? { worker, inFlight: 0, pending: new Map() }
      t.worker = worker
      worker.on("message", (answer: Answer & { id: number }) => {
        const pending = t.pending.get(answer.id)
        if (pending === undefined) return
        t.pending.delete(answer.id)
        t.inFlight--
        pending.resolve(answer)
      })
      // A crashed worker fails what it held, and is replaced.
      const fail = (reason: string) => {
        for (const [, pending] of t.pending) pending.resolve({ error: reason })
        t.pending.clear()
        t.inFlight = 0
        if (!closed) spawn(t)
      }
      worker.on("error", (error) => fail(`worker error: ${String(error)}`))
      worker.on("exit", (code) => {
        if (!closed && t.worker === worker) fail(`worker exited with code ${code}`)
      })
      return t
    }

    const pool: Array<Thread> = Array.from({ length: threads }, () => spawn(undefined))
    yield* Effect.addFinalizer(() =>
      Effect.promise(() => {
        closed = true
        return Promise.all(pool.map((t) => t.worker.terminate()))
      })
    )

    const leastBusy = () => pool.reduce((best, t) => (t.inFlight < best.inFlight ? t : best), pool[0]!)

    // One message per request (a whole piece or a large chunk of one), never per block.
    // Uninterruptible: the worker reads the caller's blocks until it answers.
    const request = (
      thread: Thread,
      job: number,
      views: ReadonlyArray<Uint8Array>,
      options: JobOptions,
      final: boolean,
      pieceLength?: number,
      ranges?: ReadonlyArray<FileRange>
    ) =>
      Effect.uninterruptible(
        Effect.async<{ digest?: Uint8Array; blocks?: Array<Uint8Array> }, HashError>((resume) => {
          if (closed) return resume(Effect.fail(new HashError({ reason: "the hasher has been closed" })))
          const id = nextId++
          thread.inFlight++
          thread.pending.set(id, {
            resolve: (answer) =>
              resume(
                answer.error === undefined
                  ? Effect.succeed(answer)
                  : Effect.fail(
                      new HashError({
                        reason: answer.error,
                        ...(answer.path !== undefined ? { path: answer.path } : {}),
                        ...(answer.code !== undefined ? { code: answer.code } : {})
                      })
                    )
              )
          })
          thread.worker.postMessage({
            id,
            job,
            views: shareable(views),
            algorithm: options.algorithm ?? "sha1",
            final,
            blockHashes: options.blockHashes === true,
            blockSize: options.blockSize ?? 16384,
            pieceLength,
            ranges
          })
        })
      )

    const begin = (options: JobOptions = {}): Job => {
      const thread = leastBusy()
      const job = nextId++
      return {
        update: (views) => Effect.map(request(thread, job, views, options, false), (a) => a.blocks ?? []),
        final: (views) =>
          Effect.map(request(thread, job, views, options, true), (a) => ({
            digest: a.digest!,
            blocks: a.blocks ?? []
          }))
      }
    }

    return {
      threads,
      begin,
      digest: (views, options) => begin(options).final(views),
      digestPieces: (view, pieceLength, algorithm = "sha1") =>
        Effect.map(
          request(leastBusy(), nextId++, [view], { algorithm }, true, pieceLength),
          (answer) => answer.digest!
        ),
      digestRanges: (ranges, pieceLength, algorithm = "sha1") =>
        Effect.map(
          request(leastBusy(), nextId++, [], { algorithm }, true, pieceLength, ranges),
          (answer) => answer.digest!
        )
    } satisfies HasherService
  })

/**
 * Hashing on the calling thread with `node:crypto`: no workers, for tests and tiny jobs.
 *
 * @since 0.1.0
 * @category constructors
 */
export const makeInline = (): HasherService => {
  const begin = (options: JobOptions = {}): Job => {
    const hash = NCrypto.createHash(options.algorithm ?? "sha1")
    const blockSize = options.blockSize ?? 16384
    let carry: Array<Uint8Array> = []
    let carryLength = 0
    const leaves = (views: ReadonlyArray<Uint8Array>, final: boolean) => {
      if (options.blockHashes !== true) return []
      const out: Array<Uint8Array> = []
      const flush = () => {
        const h = NCrypto.createHash("sha256")
        for (const v of carry) h.update(v)
        out.push(new Uint8Array(h.digest()))
        carry = []
        carryLength = 0
      }
      for (const view of views) {
        let at = 0
        while (at < view.length) {
          const n = Math.min(blockSize - carryLength, view.length - at)
          carry.push(view.subarray(at, at + n))
          carryLength += n
          at += n
          if (carryLength === blockSize) flush()
        }
      }
      if (final && carryLength > 0) flush()
      return out
    }
    return {
      update: (views) =>
        Effect.sync(() => {
          for (const view of views) hash.update(view)
          return leaves(views, false)
        }),
      final: (views) =>
        Effect.sync(() => {
          for (const view of views) hash.update(view)
          const blocks = leaves(views, true)
          return { digest: new Uint8Array(hash.digest()), blocks }
        })
    }
  }
  const digestPieces = (view: Uint8Array, pieceLength: number, algorithm: Algorithm = "sha1") =>
    Effect.sync(() => {
      const size = algorithm === "sha256" ? 32 : 20
      const count = Math.ceil(view.length / pieceLength)
      const digests = new Uint8Array(count * size)
      for (let i = 0; i < count; i++) {
        const piece = view.subarray(i * pieceLength, Math.min(view.length, (i + 1) * pieceLength))
        digests.set(NCrypto.createHash(algorithm).update(piece).digest(), i * size)
      }
      return digests
    })
  const digestRanges = (
    ranges: ReadonlyArray<FileRange>,
    pieceLength: number,
    algorithm: Algorithm = "sha1"
  ) =>
    Effect.suspend(() => {
      const total = ranges.reduce((sum, r) => sum + r.length, 0)
      const buffer = new Uint8Array(total)
      let filled = 0
      for (const range of ranges) {
        let fd: number | undefined
        try {
          fd = NFS.openSync(range.path, "r")
          let done = 0
          while (done < range.length) {
            const n = NFS.readSync(fd, buffer, filled, range.length - done, range.position + done)
            if (n === 0)
              return Effect.fail(
                new HashError({
                  reason: "the file shrank while it was being hashed",
                  path: range.path,
                  code: "CHANGED"
                })
              )
            done += n
            filled += n
          }
        } catch (error) {
          const code = (error as NodeJS.ErrnoException).code
          return Effect.fail(
            new HashError({
              reason: String(error),
              path: range.path,
              ...(code !== undefined ? { code } : {})
            })
          )
        } finally {
          if (fd !== undefined) NFS.closeSync(fd)
        }
      }
      return digestPieces(buffer, pieceLength, algorithm)
    })
  return {
    threads: 0,
    begin,
    digest: (views, options) => begin(options).final(views),
    digestPieces,
    digestRanges
  }
}

/**
 * @since 0.1.0
 * @category layers
 */
export const layer = (options: { readonly threads?: number } = {}): Layer.Layer<Hasher> =>
  Layer.scoped(Hasher, make(options))

/**
 * @since 0.1.0
 * @category layers
 */
export const layerInline: Layer.Layer<Hasher> = Layer.sync(Hasher, makeInline)
