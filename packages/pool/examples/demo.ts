/**
 * A seeder and a download share one pool. Readers (serving peers) take blocks and hold them while
 * a "socket" sends them; a writer (a fast peer flooding us with data) takes blocks and holds them
 * while a slow "disk" writes them, and pauses whenever the pool reports it is past its high
 * watermark. Memory stays under the hard limit and neither side starves.
 *
 *   pnpm --filter @ezio/pool demo        (or `pnpm demo` at the root)
 */
import { Console, Effect, Fiber, Ref, Schedule } from "effect"
import { BufferPool } from "../src/index.js"

const MiB = 1024 * 1024

const program = Effect.gen(function* () {
  const pool = yield* BufferPool.BufferPool
  const sent = yield* Ref.make(0)
  const written = yield* Ref.make(0)
  const pauses = yield* Ref.make(0)

  // Seeding: 4 peers each request 16 blocks (256 KiB) at a time; sending takes 2 ms.
  const reader = pool
    .withBlocks(16, "read", (blocks) =>
      Effect.zipRight(
        Effect.sleep("2 millis"),
        Ref.update(sent, (n) => n + blocks.length)
      )
    )
    .pipe(Effect.forever)

  // A write flood: 64 blocks (1 MiB) arrive at once and the disk takes 20 ms to write them.
  // Like a peer session, the writer keeps its blocks until written and stops reading its socket
  // (here: stops acquiring) while the pool is exceeded.
  const writer = Effect.gen(function* () {
    const { exceeded, value } = yield* pool.acquireMany(64, "write")
    // The disk write runs on its own fiber and gives the blocks back as soon as it is done
    // (the writer's scope would otherwise hold them until it closes).
    yield* Effect.sleep("20 millis").pipe(
      Effect.zipRight(Ref.update(written, (n) => n + value.length)),
      Effect.ensuring(Effect.sync(() => value.forEach((block) => block.release()))),
      Effect.forkScoped
    )
    if (exceeded) {
      yield* Ref.update(pauses, (n) => n + 1)
      yield* pool.awaitNormal
    }
  }).pipe(Effect.forever, Effect.scoped)

  const report = Effect.gen(function* () {
    const s = yield* pool.stats
    yield* Console.log(
      `in use ${((s.inUse * s.blockSize) / MiB).toFixed(1).padStart(6)} MiB ` +
        `(read ${s.inUseBy.read}, write ${s.inUseBy.write} blocks)  ` +
        `${s.exceeded ? "EXCEEDED" : "normal  "}  sent ${(((yield* Ref.get(sent)) * s.blockSize) / MiB).toFixed(0)} MiB, ` +
        `written ${(((yield* Ref.get(written)) * s.blockSize) / MiB).toFixed(0)} MiB`
    )
  })

  yield* Console.log(
    "One 64 MiB pool (high watermark 7/8, low 1/2) shared by 4 seeding readers and a write flood:\n"
  )
  const fibers = yield* Effect.all([reader, reader, reader, reader, writer].map((f) => Effect.fork(f)))
  const reporter = yield* Effect.fork(Effect.repeat(report, Schedule.spaced("250 millis")))
  yield* Effect.sleep("2 seconds")
  yield* Fiber.interruptAll([...fibers, reporter])

  const s = yield* pool.stats
  yield* Console.log(
    `\npeak ${((s.peak * s.blockSize) / MiB).toFixed(1)} MiB of a ${((s.hardLimitBlocks * s.blockSize) / MiB).toFixed(0)} MiB hard limit; ` +
      `${s.exceededTransitions} watermark crossings, writer paused ${yield* Ref.get(pauses)} times; ` +
      `seeding sent ${(((yield* Ref.get(sent)) * s.blockSize) / MiB).toFixed(0)} MiB, the flood wrote ${(((yield* Ref.get(written)) * s.blockSize) / MiB).toFixed(0)} MiB; ` +
      `blocks still in use: ${s.inUse}`
  )
})

Effect.runPromise(program.pipe(Effect.provide(BufferPool.layer({ capacity: 64 * MiB, name: "demo" })))).catch(
  (error) => {
    console.error(error)
    process.exit(1)
  }
)
