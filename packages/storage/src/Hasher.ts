/**
 * Piece hashing off the main thread: a pool of worker threads that read pool blocks in place
 * (views over SharedArrayBuffer slabs are shared with a worker, never copied or transferred), so
 * both cores work while the event loop keeps serving peers.
 *
 * @since 0.1.0
 */
import * as NCrypto from "node:crypto"
import * as NOS from "node:os"
import { Worker } from "node:worker_threads"
import * as Context from "effect/Context"
import * as Data from "effect/Data"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import type * as Scope from "effect/Scope"
import { digestPieces, leafHasher, readRanges } from "./internal/digest.mjs"

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
  /**
   * `final` for plain code on a hot path (one call per downloaded piece): `done` is called once
   * with the digest or the error, possibly before this returns; no fiber is started.
   */
  readonly unsafeFinal: (views: ReadonlyArray<Uint8Array>, done: (result: Digest | HashError) => void) => void
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
  /**
   * The caller has just written these bytes (they are in its cache): with the hasher's
   * `hotJobs: "caller"` the job runs on the calling thread.
   */
  readonly hot?: boolean
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
export class Hasher extends Context.Tag("@ezio/storage/Hasher")<Hasher, HasherService>() {}

const workerUrl = new URL("./internal/hashWorker.mjs", import.meta.url)

/**
 * The bundled `ezio` (npm bin and single executable) has no worker file beside it: its bundle puts
 * the worker's code, as a CommonJS script, on globalThis under this key.
 */
const embeddedWorker = Symbol.for("ezio.hashWorkerSource")

/** The id of the message a worker sends once its code is loaded (requests count up from 0). */
const READY = -1

const newWorker = (): Worker => {
  const source = (globalThis as { readonly [embeddedWorker]?: unknown })[embeddedWorker]
  return typeof source === "string" ? new Worker(source, { eval: true }) : new Worker(workerUrl)
}

/**
 * Shared memory each worker has been given once, by id: a request names a view of it as three
 * numbers (id, byte offset, length) instead of sending the SharedArrayBuffer again, which costs
 * far more per message than the hashing it asks for. Ids are per buffer, for every worker; when
 * the main thread's buffer object is collected the workers are told to drop theirs.
 */
const sharedIds = new WeakMap<SharedArrayBuffer, number>()
let nextSharedId = 0

/**
 * `views` as a request carries them: `refs` holds (id, byte offset, length) per view, id -1 - i
 * meaning `inline[i]` (a view not in shared memory, copied into a fresh SharedArrayBuffer);
 * `register` the buffers this worker has not seen yet.
 */
const encodeViews = (
  thread: Thread,
  views: ReadonlyArray<Uint8Array>,
  shared: FinalizationRegistry<number>
): {
  readonly refs: Float64Array
  readonly inline: Array<Uint8Array> | undefined
  readonly register: Array<[number, SharedArrayBuffer]> | undefined
} => {
  const refs = new Float64Array(views.length * 3)
  let n = 0
  let inline: Array<Uint8Array> | undefined
  let register: Array<[number, SharedArrayBuffer]> | undefined
  let lastBuffer: ArrayBufferLike | undefined
  for (let i = 0; i < views.length; i++) {
    const view = views[i]!
    const buffer = view.buffer
    // A view that continues the previous one in the same shared buffer extends it: the worker
    // then hashes a piece whose pool blocks lie back to back in one update, not one per block.
    if (buffer === lastBuffer && refs[n * 3 - 2]! + refs[n * 3 - 1]! === view.byteOffset) {
      refs[n * 3 - 1] = refs[n * 3 - 1]! + view.length
      continue
    }
    let id: number
    if (buffer instanceof SharedArrayBuffer) {
      let known = sharedIds.get(buffer)
      if (known === undefined) {
        known = nextSharedId++
        sharedIds.set(buffer, known)
        shared.register(buffer, known)
      }
      id = known
      if (!thread.registered.has(id)) {
        thread.registered.add(id)
        ;(register ??= []).push([id, buffer])
      }
      refs[n * 3 + 1] = view.byteOffset
      lastBuffer = buffer
    } else {
      const copy = new Uint8Array(new SharedArrayBuffer(view.length))
      copy.set(view)
      inline ??= []
      id = -1 - inline.length
      inline.push(copy)
      lastBuffer = undefined
    }
    refs[n * 3] = id
    refs[n * 3 + 2] = view.length
    n++
  }
  return { refs: n === views.length ? refs : refs.slice(0, n * 3), inline, register }
}

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
  /** Ids of the shared buffers this worker holds (see `encodeViews`). */
  registered: Set<number>
}

/**
 * Called around worker start-ups: `before` when one begins and none was under way, `after` once
 * every worker started has loaded its code (or failed). The CLI uses it to give V8 its default
 * flags while a worker starts: Node's built-in code cache for its own modules is rejected when
 * any V8 flag differs from the build's, and a worker then compiles them (tens of ms of CPU).
 *
 * @since 0.1.0
 * @category models
 */
export interface WorkerStartHooks {
  readonly before: () => void
  readonly after: () => void
}

/**
 * @since 0.1.0
 * @category models
 */
export interface Options {
  readonly threads?: number
  readonly workerStart?: WorkerStartHooks
  /**
   * Where `hot` jobs hash: on the workers (default) or on the calling thread. A download's pieces
   * were just copied into pool blocks on the calling thread, so its cache holds them: hashing them
   * there costs ~0.5 CPU-s per GiB against ~0.7 on a worker reading them from the other core's
   * cache, with no message each way and no worker to start. Everything else (a check reading storage,
   * `digestPieces`, `digestRanges`) stays on the workers, in parallel.
   */
  readonly hotJobs?: "workers" | "caller"
}

/**
 * A pool of up to `threads` hashing workers (default: one per core), terminated when the scope
 * closes. Workers start when work needs them, not with the pool: each is a Node start-up of its
 * own in CPU time, paid by every process of a deploy at once, and a seeder that trusts its data
 * needs none.
 *
 * @since 0.1.0
 * @category constructors
 */
export const make = (options: Options = {}): Effect.Effect<HasherService, never, Scope.Scope> =>
  Effect.gen(function* () {
    const threads = Math.max(1, options.threads ?? NOS.availableParallelism())
    const hooks = options.workerStart
    let starting = 0
    let nextId = 0
    let closed = false

    const spawn = (thread: Thread | undefined): Thread => {
      if (hooks !== undefined && starting++ === 0) hooks.before()
      const worker = newWorker()
      // The worker says `ready` once its code is loaded; an error or exit ends the start too.
      let started = hooks === undefined
      const up = () => {
        if (started) return
        started = true
        if (--starting === 0) hooks!.after()
      }
      const t: Thread = thread ?? { worker, inFlight: 0, pending: new Map(), registered: new Set() }
      t.worker = worker
      t.registered = new Set()
      worker.on("message", (answer: Answer & { id: number }) => {
        if (answer.id === READY) return up()
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
      worker.on("error", (error) => {
        up()
        fail(`worker error: ${String(error)}`)
      })
      worker.on("exit", (code) => {
        up()
        if (!closed && t.worker === worker) fail(`worker exited with code ${code}`)
      })
      return t
    }

    // The first request starts a worker, and another starts only once requests queue behind every
    // started one: a download hashes a piece (two at worst) long before the next arrive and never
    // pays a second worker's start-up and memory, while a check or a torrent creation, which keeps
    // several requests per worker in flight, soon runs on all of them.
    const pool: Array<Thread> = []
    // A buffer gone from this thread cannot be named by a request again: the workers let go too.
    const shared = new FinalizationRegistry<number>((id) => {
      if (closed) return
      for (const t of pool) if (t.registered.delete(id)) t.worker.postMessage({ id: -1, forget: id })
    })
    yield* Effect.addFinalizer(() =>
      Effect.promise(() => {
        closed = true
        return Promise.all(pool.map((t) => t.worker.terminate()))
      })
    )

    const leastBusy = (): Thread => {
      const best = pool.reduce<Thread | undefined>(
        (b, t) => (b === undefined || t.inFlight < b.inFlight ? t : b),
        undefined
      )
      if (best !== undefined && (best.inFlight < 2 || pool.length >= threads || closed)) return best
      const fresh = spawn(undefined)
      pool.push(fresh)
      return fresh
    }

    // One message per request (a whole piece or a large chunk of one), never per block.
    const send = (
      pick: () => Thread,
      job: number,
      views: ReadonlyArray<Uint8Array>,
      options: JobOptions,
      final: boolean,
      done: (answer: Answer | HashError) => void,
      pieceLength?: number,
      ranges?: ReadonlyArray<FileRange>
    ): void => {
      if (closed) return done(new HashError({ reason: "the hasher has been closed" }))
      const thread = pick()
      const id = nextId++
      thread.inFlight++
      thread.pending.set(id, {
        resolve: (answer) =>
          done(
            answer.error === undefined
              ? answer
              : new HashError({
                  reason: answer.error,
                  ...(answer.path !== undefined ? { path: answer.path } : {}),
                  ...(answer.code !== undefined ? { code: answer.code } : {})
                })
          )
      })
      const { inline, refs, register } = encodeViews(thread, views, shared)
      thread.worker.postMessage({
        id,
        job,
        refs,
        inline,
        register,
        algorithm: options.algorithm ?? "sha1",
        final,
        blockHashes: options.blockHashes === true,
        blockSize: options.blockSize ?? 16384,
        pieceLength,
        ranges
      })
    }

    // Uninterruptible: the worker reads the caller's blocks until it answers.
    const request = (
      pick: () => Thread,
      job: number,
      views: ReadonlyArray<Uint8Array>,
      options: JobOptions,
      final: boolean,
      pieceLength?: number,
      ranges?: ReadonlyArray<FileRange>
    ) =>
      Effect.uninterruptible(
        Effect.async<Answer, HashError>((resume) =>
          send(
            pick,
            job,
            views,
            options,
            final,
            (answer) => resume(answer instanceof HashError ? Effect.fail(answer) : Effect.succeed(answer)),
            pieceLength,
            ranges
          )
        )
      )

    const begin = (options: JobOptions = {}): Job => {
      // Every chunk of a job goes to the worker its first one went to.
      let thread: Thread | undefined
      const pick = () => (thread ??= leastBusy())
      const job = nextId++
      return {
        update: (views) => Effect.map(request(pick, job, views, options, false), (a) => a.blocks ?? []),
        final: (views) =>
          Effect.map(request(pick, job, views, options, true), (a) => ({
            digest: a.digest!,
            blocks: a.blocks ?? []
          })),
        unsafeFinal: (views, done) =>
          send(pick, job, views, options, true, (a) =>
            done(a instanceof HashError ? a : { digest: a.digest!, blocks: a.blocks ?? [] })
          )
      }
    }

    const onCaller = options.hotJobs === "caller" ? makeInline() : undefined
    const beginWhere = (jobOptions: JobOptions = {}): Job =>
      onCaller !== undefined && jobOptions.hot === true ? onCaller.begin(jobOptions) : begin(jobOptions)
    return {
      threads,
      begin: beginWhere,
      digest: (views, jobOptions) => beginWhere(jobOptions).final(views),
      digestPieces: (view, pieceLength, algorithm = "sha1") =>
        Effect.map(
          request(leastBusy, nextId++, [view], { algorithm }, true, pieceLength),
          (answer) => answer.digest!
        ),
      digestRanges: (ranges, pieceLength, algorithm = "sha1") =>
        Effect.map(
          request(leastBusy, nextId++, [], { algorithm }, true, pieceLength, ranges),
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
    const leaves = options.blockHashes === true ? leafHasher(options.blockSize ?? 16384) : undefined
    const step = (views: ReadonlyArray<Uint8Array>, final: boolean) => {
      for (const view of views) hash.update(view)
      return leaves === undefined ? [] : leaves(views, final)
    }
    const final = (views: ReadonlyArray<Uint8Array>): Digest => {
      const blocks = step(views, true)
      return { digest: new Uint8Array(hash.digest()), blocks }
    }
    return {
      update: (views) => Effect.sync(() => step(views, false)),
      final: (views) => Effect.sync(() => final(views)),
      unsafeFinal: (views, done) => done(final(views))
    }
  }
  return {
    threads: 0,
    begin,
    digest: (views, options) => begin(options).final(views),
    digestPieces: (view, pieceLength, algorithm = "sha1") =>
      Effect.sync(() => digestPieces(view, pieceLength, algorithm)),
    digestRanges: (ranges, pieceLength, algorithm = "sha1") =>
      Effect.suspend(() => {
        const buffer = new Uint8Array(ranges.reduce((sum, r) => sum + r.length, 0))
        const failed = readRanges(ranges, buffer)
        if (failed === undefined) return Effect.succeed(digestPieces(buffer, pieceLength, algorithm))
        const code = (failed.error as NodeJS.ErrnoException).code
        return Effect.fail(
          new HashError({
            reason: code === "CHANGED" ? (failed.error as Error).message : String(failed.error),
            ...(failed.path !== undefined ? { path: failed.path } : {}),
            ...(code !== undefined ? { code } : {})
          })
        )
      })
  }
}

/**
 * @since 0.1.0
 * @category layers
 */
export const layer = (options: Options = {}): Layer.Layer<Hasher> => Layer.scoped(Hasher, make(options))

/**
 * @since 0.1.0
 * @category layers
 */
export const layerInline: Layer.Layer<Hasher> = Layer.sync(Hasher, makeInline)
