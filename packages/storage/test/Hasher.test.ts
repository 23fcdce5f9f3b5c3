import * as NFS from "node:fs"
import { assert, describe, it, layer } from "@effect/vitest"
import { BufferPool } from "@ezio/pool"
import { random, sha1, sha256 } from "@ezio/test-support/data"
import { Effect, Layer } from "effect"
import { Hasher } from "../src/index.js"

const Env = Layer.mergeAll(Hasher.layer({ threads: 2 }), BufferPool.layer({ capacity: 8 * 1024 * 1024 }))

layer(Env)("Hasher (worker threads)", (it) => {
  it.effect("gives node:crypto's digests for pool blocks read in place and for ordinary buffers", () =>
    Effect.gen(function* () {
      const hasher = yield* Hasher.Hasher
      const pool = yield* BufferPool.BufferPool
      const data = random(5 * 16384 + 100, 1)
      const plain = yield* hasher.digest([data.subarray(0, 1000), data.subarray(1000)])
      assert.deepStrictEqual(plain.digest, sha1(data))
      const inBlocks = yield* pool.withBlocks(6, "hash", (blocks) => {
        const views = blocks.map((b, i) => {
          const part = data.subarray(i * 16384, Math.min(data.length, (i + 1) * 16384))
          b.bytes.set(part)
          return b.bytes.subarray(0, part.length)
        })
        return hasher.digest(views, { algorithm: "sha256", blockHashes: true })
      })
      assert.deepStrictEqual(inBlocks.digest, sha256(data))
      assert.strictEqual(inBlocks.blocks.length, 6)
      for (let i = 0; i < 6; i++) {
        assert.deepStrictEqual(inBlocks.blocks[i], sha256(data.subarray(i * 16384, (i + 1) * 16384)))
      }
    })
  )

  // Views back to back in one shared buffer travel as one range; the digests must not notice.
  it.effect("views adjacent in shared memory, in and out of order, with a short one between", () =>
    Effect.gen(function* () {
      const hasher = yield* Hasher.Hasher
      const slab = new Uint8Array(new SharedArrayBuffer(6 * 16384))
      slab.set(random(slab.length, 9))
      const at = (i: number, length = 16384) => slab.subarray(i * 16384, i * 16384 + length)
      const other = new Uint8Array(new SharedArrayBuffer(16384))
      other.set(random(16384, 10))
      const views = [at(0), at(1), at(2, 100), at(4), at(5), at(3), other, at(0).subarray(0, 5000)]
      const joined = Buffer.concat(views)
      const v1 = yield* hasher.digest(views)
      assert.deepStrictEqual(v1.digest, sha1(joined))
      const v2 = yield* hasher.digest(views, { algorithm: "sha256", blockHashes: true })
      assert.deepStrictEqual(v2.digest, sha256(joined))
      const leaves = Array.from({ length: Math.ceil(joined.length / 16384) }, (_, i) =>
        sha256(joined.subarray(i * 16384, (i + 1) * 16384))
      )
      assert.deepStrictEqual(v2.blocks, leaves)
    })
  )

  it.effect("an incremental job across chunks, and many jobs at once, match", () =>
    Effect.gen(function* () {
      const hasher = yield* Hasher.Hasher
      const data = random(4 * 16384 + 7, 2)
      const job = hasher.begin()
      yield* job.update([data.subarray(0, 2 * 16384)])
      const { digest } = yield* job.final([data.subarray(2 * 16384)])
      assert.deepStrictEqual(digest, sha1(data))
      const many = yield* Effect.forEach(
        Array.from({ length: 20 }, (_, i) => random(10000 + i, i + 3)),
        (d) => Effect.map(hasher.digest([d]), (r) => Buffer.compare(r.digest, sha1(d)) === 0),
        { concurrency: "unbounded" }
      )
      assert.isTrue(many.every(Boolean))
    })
  )

  it.effect("unsafeFinal answers as final does, after updates too, on workers and inline", () =>
    Effect.gen(function* () {
      const data = random(3 * 16384 + 11, 7)
      for (const hasher of [yield* Hasher.Hasher, Hasher.makeInline()]) {
        const job = hasher.begin({ algorithm: "sha256", blockHashes: true })
        const first = yield* job.update([data.subarray(0, 16384)])
        const rest = yield* Effect.async<Hasher.Digest | Hasher.HashError>((resume) =>
          job.unsafeFinal([data.subarray(16384)], (result) => resume(Effect.succeed(result)))
        )
        assert.ok(!(rest instanceof Hasher.HashError))
        assert.deepStrictEqual(rest.digest, sha256(data))
        assert.deepStrictEqual([...first, ...rest.blocks].length, 4)
        assert.deepStrictEqual(rest.blocks[2], sha256(data.subarray(3 * 16384)))
        const plain = yield* Effect.async<Hasher.Digest | Hasher.HashError>((resume) =>
          hasher.begin().unsafeFinal([data], (result) => resume(Effect.succeed(result)))
        )
        assert.ok(!(plain instanceof Hasher.HashError))
        assert.deepStrictEqual(plain.digest, sha1(data))
      }
    })
  )

  it.effect(
    "v2 leaves and digests do not depend on how a piece is cut into updates (worker and inline)",
    () =>
      Effect.gen(function* () {
        const data = random(5 * 16384 + 300, 5)
        const leaves = Array.from({ length: 6 }, (_, i) => sha256(data.subarray(i * 16384, (i + 1) * 16384)))
        // Cuts inside leaves, and many views per call.
        const cuts = [0, 5000, 16384, 40000, 40001, 81920, data.length]
        for (const hasher of [yield* Hasher.Hasher, Hasher.makeInline()]) {
          const job = hasher.begin({ algorithm: "sha256", blockHashes: true })
          const got: Array<Uint8Array> = []
          for (let i = 0; i + 2 < cuts.length; i++)
            got.push(...(yield* job.update([data.subarray(cuts[i]!, cuts[i + 1]!)])))
          const last = yield* job.final([
            data.subarray(cuts[cuts.length - 2]!, cuts[cuts.length - 2]! + 100),
            data.subarray(cuts[cuts.length - 2]! + 100)
          ])
          got.push(...last.blocks)
          assert.deepStrictEqual(last.digest, sha256(data))
          assert.deepStrictEqual(got, leaves)
        }
      })
  )

  it.effect("the inline hasher agrees", () =>
    Effect.gen(function* () {
      const data = random(3 * 16384 + 5, 4)
      const r = yield* Hasher.makeInline().digest([data], { algorithm: "sha256", blockHashes: true })
      assert.deepStrictEqual(r.digest, sha256(data))
      assert.deepStrictEqual(r.blocks[3], sha256(data.subarray(3 * 16384)))
    })
  )
})

// Linux: the process's threads are listed in /proc/self/task; a worker is one more.
const threadCount = () => NFS.readdirSync("/proc/self/task").length

describe.runIf(NFS.existsSync("/proc/self/task"))("Hasher workers start on demand", () => {
  it.effect("none with the pool, one for a lone request, at most `threads` under load", () =>
    Effect.scoped(
      Effect.gen(function* () {
        const before = threadCount()
        const hasher = yield* Hasher.make({ threads: 2 })
        assert.strictEqual(threadCount(), before, "no worker before any work")
        const data = random(64 * 1024, 7)
        assert.deepStrictEqual((yield* hasher.digest([data])).digest, sha1(data))
        const afterOne = threadCount()
        assert.strictEqual(afterOne, before + 1, "one request, one worker")
        // Requests in sequence find the worker idle again: still one.
        for (let i = 0; i < 5; i++) yield* hasher.digestPieces(data, 16384)
        assert.strictEqual(threadCount(), afterOne)
        const many = yield* Effect.forEach(
          Array.from({ length: 12 }, (_, i) => random(256 * 1024, i + 10)),
          (d) => Effect.map(hasher.digest([d]), (r) => Buffer.compare(r.digest, sha1(d)) === 0),
          { concurrency: "unbounded" }
        )
        assert.isTrue(many.every(Boolean))
        assert.strictEqual(threadCount(), before + 2, "busy workers: a second one, never a third")
      })
    )
  )

  // A download's pieces hash where they were received: hot jobs answer on the calling thread (no
  // worker); other jobs (a check reading storage) and the bulk requests still go to a worker.
  it.effect('hotJobs: "caller" hashes hot jobs on the calling thread, the rest on a worker', () =>
    Effect.scoped(
      Effect.gen(function* () {
        const before = threadCount()
        const hasher = yield* Hasher.make({ threads: 2, hotJobs: "caller" })
        const data = random(3 * 16384 + 5, 11)
        let answered: Hasher.Digest | Hasher.HashError | undefined
        hasher
          .begin({ hot: true })
          .unsafeFinal([data.subarray(0, 16384), data.subarray(16384)], (r) => (answered = r))
        assert.isDefined(answered, "answered before unsafeFinal returned")
        assert.deepStrictEqual((answered as Hasher.Digest).digest, sha1(data))
        assert.deepStrictEqual((yield* hasher.digest([data], { hot: true })).digest, sha1(data))
        assert.strictEqual(threadCount(), before, "no worker for hot jobs")
        assert.deepStrictEqual((yield* hasher.digest([data])).digest, sha1(data))
        assert.strictEqual(threadCount(), before + 1, "a worker for the others")
        const pieces = yield* hasher.digestPieces(data, 16384)
        assert.deepStrictEqual(pieces.subarray(0, 20), sha1(data.subarray(0, 16384)))
      })
    )
  )

  // The CLI gives V8 its default flags while a worker starts (Node's code cache for its modules),
  // so `after` must come once the worker has loaded, before its first answer.
  it.effect("workerStart brackets the start-ups: before when one begins, after once all have loaded", () =>
    Effect.scoped(
      Effect.gen(function* () {
        const calls: Array<string> = []
        const hasher = yield* Hasher.make({
          threads: 2,
          workerStart: { before: () => calls.push("before"), after: () => calls.push("after") }
        })
        assert.deepStrictEqual(calls, [], "no worker yet, no call")
        const data = random(64 * 1024, 3)
        assert.deepStrictEqual((yield* hasher.digest([data])).digest, sha1(data))
        assert.deepStrictEqual(calls, ["before", "after"])
        // A second worker under load: the calls still pair up, never two starts without an end.
        yield* Effect.forEach(
          Array.from({ length: 12 }, (_, i) => random(256 * 1024, i + 30)),
          (d) => hasher.digest([d]),
          { concurrency: "unbounded" }
        )
        assert.isAtLeast(calls.length, 4)
        assert.deepStrictEqual(
          calls,
          calls.map((_, i) => (i % 2 === 0 ? "before" : "after"))
        )
      })
    )
  )
})
