/**
 * Blocks per second for each way of acquiring a block, against `Buffer.allocUnsafeSlow(16384)`
 * measured in the same run. Prints a table of ns/block and ratios; no assertions (machines are noisy).
 *
 *   pnpm --filter @ezio/pool bench
 */
import { Effect, Exit, Queue, Scope } from "effect"
import { BufferPool } from "../src/index.js"

const BLOCK = 16 * 1024
const ROUNDS = 3

interface Result {
  readonly name: string
  readonly nsPerBlock: number
}

const timeSync = (blocks: number, run: () => void): number => {
  let best = Infinity
  for (let r = 0; r < ROUNDS; r++) {
    const start = process.hrtime.bigint()
    run()
    best = Math.min(best, Number(process.hrtime.bigint() - start) / blocks)
  }
  return best
}

const timeEffect = <E>(blocks: number, run: Effect.Effect<void, E>): Effect.Effect<number, E> =>
  Effect.gen(function* () {
    let best = Infinity
    for (let r = 0; r < ROUNDS; r++) {
      const start = process.hrtime.bigint()
      yield* run
      best = Math.min(best, Number(process.hrtime.bigint() - start) / blocks)
    }
    return best
  })

const program = Effect.gen(function* () {
  const pool = yield* BufferPool.BufferPool
  const results: Array<Result> = []

  // Baseline: what a pool-less implementation pays per block (allocation + first touch).
  {
    const n = 50_000
    let sink = 0
    const ns = timeSync(n, () => {
      for (let i = 0; i < n; i++) {
        const b = Buffer.allocUnsafeSlow(BLOCK)
        b[0] = i
        sink += b[0]!
      }
    })
    if (sink < 0) console.log(sink)
    results.push({ name: "Buffer.allocUnsafeSlow(16384) (baseline)", nsPerBlock: ns })
  }

  // Hot path: plain calls from socket/fs callbacks, released by hand.
  {
    const n = 1_000_000
    const ns = timeSync(n, () => {
      for (let i = 0; i < n; i++) {
        const block = pool.unsafeTryAcquire("read")!
        block.bytes[0] = i
        block.release()
      }
    })
    results.push({ name: "unsafeTryAcquire + release (hot path)", nsPerBlock: ns })
  }
  {
    const n = 1_000_000
    const held: Array<BufferPool.Block> = []
    const ns = timeSync(n, () => {
      for (let i = 0; i < n; i += 16) {
        for (let j = 0; j < 16; j++) held.push(pool.unsafeTryAcquire("read")!)
        for (let j = 0; j < 16; j++) held.pop()!.release()
      }
    })
    results.push({ name: "unsafeTryAcquire x16 then release x16", nsPerBlock: ns })
  }

  // Scoped, one block per scope: the simplest Effect API.
  {
    const n = 50_000
    const ns = yield* timeEffect(
      n,
      Effect.gen(function* () {
        for (let i = 0; i < n; i++) yield* Effect.scoped(pool.acquire("read"))
      })
    )
    results.push({ name: "Effect.scoped(acquire) per block", nsPerBlock: ns })
  }

  // Scoped, into a long-lived scope: one finalizer per block (all held until the scope closes,
  // so stay under the hard limit).
  {
    const n = 4_000
    const ns = yield* timeEffect(
      n,
      Effect.gen(function* () {
        const scope = yield* Scope.make()
        yield* Effect.gen(function* () {
          for (let i = 0; i < n; i++) yield* pool.acquire("read")
        }).pipe(Scope.extend(scope))
        yield* Scope.close(scope, Exit.void)
      })
    )
    results.push({ name: "acquire into an open scope", nsPerBlock: ns })
  }

  // A request's worth: acquireMany(16) per scope (one 256 KiB read, one finalizer).
  {
    const n = 400_000
    const ns = yield* timeEffect(
      n,
      Effect.gen(function* () {
        for (let i = 0; i < n; i += 16) yield* Effect.scoped(pool.acquireMany(16, "read"))
      })
    )
    results.push({ name: "Effect.scoped(acquireMany(16))", nsPerBlock: ns })
  }
  {
    const n = 400_000
    const ns = yield* timeEffect(
      n,
      Effect.gen(function* () {
        for (let i = 0; i < n; i += 16) yield* pool.withBlocks(16, "read", () => Effect.void)
      })
    )
    results.push({ name: "withBlocks(16)", nsPerBlock: ns })
  }

  // The seeding path: a disk fiber reads 16 blocks, hands them to the socket fiber's scope,
  // which releases each block as its write completes.
  {
    const n = 400_000
    const ns = yield* timeEffect(
      n,
      Effect.gen(function* () {
        const queue = yield* Queue.bounded<ReadonlyArray<BufferPool.Block>>(4)
        const socketScope = yield* Scope.make()
        const sender = Effect.gen(function* () {
          for (let i = 0; i < n; i += 16) {
            const batch = yield* queue.take
            for (const block of batch) block.release()
          }
        })
        const reader = Effect.gen(function* () {
          for (let i = 0; i < n; i += 16) {
            yield* pool.withBlocks(16, "read", (blocks) =>
              Effect.zipRight(pool.transfer(blocks, socketScope), queue.offer(blocks))
            )
          }
        })
        yield* Effect.all([reader, sender], { concurrency: 2, discard: true })
        yield* Scope.close(socketScope, Exit.void)
      })
    )
    results.push({ name: "cross-fiber hand-off (withBlocks 16 + transfer + queue)", nsPerBlock: ns })
  }

  const stats = yield* pool.stats
  const baseline = results[0]!.nsPerBlock
  console.log(`\n@ezio/pool acquisition benchmark (${ROUNDS} rounds, best; Node ${process.version})\n`)
  console.log("| way of acquiring | ns/block | blocks/s | speed vs baseline |")
  console.log("|---|---:|---:|---:|")
  for (const r of results) {
    const perSecond = 1e9 / r.nsPerBlock
    console.log(
      `| ${r.name} | ${r.nsPerBlock.toFixed(0)} | ${(perSecond / 1e6).toFixed(2)} M | ${(baseline / r.nsPerBlock).toFixed(2)}x |`
    )
  }
  console.log(
    `\npeak blocks in use: ${stats.peak}; blocks committed: ${stats.allocatedBlocks}; in use at end: ${stats.inUse}`
  )
})

Effect.runPromise(program.pipe(Effect.provide(BufferPool.layer({ capacity: 64 * 1024 * 1024 })))).catch(
  (e) => {
    console.error(e)
    process.exit(1)
  }
)
