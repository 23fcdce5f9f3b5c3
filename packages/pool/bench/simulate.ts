/**
 * Replays the workloads of the seed's analysis (shared/seeds/BUFFER_POOL_MERGER.md) against the
 * real BufferPool: EZIO's two split pools of half the capacity each, against one unified pool
 * (hard limit = capacity) and one with libtorrent-style soft over-allocation (hard limit 1.25x).
 * Demand is the number of blocks each side wants held at once; readers and writers take turns
 * one block at a time; a refused allocation is a stall (the job would have to wait).
 *
 *   pnpm --filter @ezio/pool simulate
 */
import { Effect, Logger, LogLevel } from "effect"
import { BufferPool } from "../src/index.js"

const MiB = 1024 * 1024
const BLOCK = 16 * 1024
const CAPACITY = 256 * MiB

interface Phase {
  readonly read: number // MiB wanted held
  readonly write: number
}
interface Workload {
  readonly name: string
  readonly phases: ReadonlyArray<Phase>
}

const workloads: ReadonlyArray<Workload> = [
  { name: "Balanced (128R + 128W)", phases: [{ read: 128, write: 128 }] },
  { name: "Read-heavy (200R + 20W)", phases: [{ read: 200, write: 20 }] },
  { name: "Write-heavy (20R + 200W)", phases: [{ read: 20, write: 200 }] },
  { name: "Peak mixed (150R + 150W)", phases: [{ read: 150, write: 150 }] },
  {
    name: "Write flood during seeding (150R; W 50→100→150)",
    phases: [
      { read: 150, write: 50 },
      { read: 150, write: 100 },
      { read: 150, write: 150 }
    ]
  }
]

interface Outcome {
  readonly allocatedMiB: number
  readonly stalledMiB: number
  /** Writes held back by backpressure (not refused: they wait outside the pool). */
  readonly pausedMiB: number
  readonly readStalledMiB: number
  readonly committedMiB: number
  /** Total in use (MiB) when backpressure first fired, or undefined if it never did. */
  readonly backpressureAtMiB: number | undefined
}

type Design = "split" | "unified" | "unified-soft" | "unified-paced"

const pools = (design: Design) =>
  Effect.gen(function* () {
    if (design === "split") {
      const read = yield* BufferPool.make({ capacity: CAPACITY / 2, name: "read" })
      const write = yield* BufferPool.make({ capacity: CAPACITY / 2, name: "write" })
      return { read, write, all: [read, write] }
    }
    const one = yield* BufferPool.make({
      capacity: CAPACITY,
      hardLimit: design === "unified-soft" ? CAPACITY * 1.25 : CAPACITY,
      name: design
    })
    return { read: one, write: one, all: [one] }
  })

const run = (design: Design, workload: Workload) =>
  Effect.scoped(
    Effect.gen(function* () {
      const { all, read, write } = yield* pools(design)
      const held = { read: 0, write: 0 }
      let stalled = 0
      let paused = 0
      let readStalled = 0
      let backpressureAt: number | undefined
      const inUse = () => all.reduce((n, p) => n + p.unsafeStats().inUse, 0)
      for (const phase of workload.phases) {
        const want = { read: (phase.read * MiB) / BLOCK, write: (phase.write * MiB) / BLOCK }
        const refused = { read: false, write: false }
        // Take turns, one block each, until both sides hold what they want or were refused;
        // what a refused side still wanted stalls (it would have to wait for a free block).
        let progress = true
        while (progress) {
          progress = false
          for (const side of ["read", "write"] as const) {
            if (refused[side] || held[side] >= want[side]) continue
            // Backpressure as a peer session applies it: past the high watermark, stop reading
            // the socket (the write waits in the sender's TCP window, holding no pool memory).
            if (design === "unified-paced" && side === "write" && write.unsafeIsExceeded()) {
              refused[side] = true
              paused += want[side] - held[side]
              continue
            }
            const block = (side === "read" ? read : write).unsafeTryAcquire(side)
            if (block === undefined) {
              refused[side] = true
              const missing = want[side] - held[side]
              stalled += missing
              if (side === "read") readStalled += missing
              continue
            }
            held[side]++
            progress = true
            if (backpressureAt === undefined && all.some((p) => p.unsafeIsExceeded()))
              backpressureAt = inUse()
          }
        }
      }
      const toMiB = (blocks: number) => (blocks * BLOCK) / MiB
      return {
        allocatedMiB: toMiB(inUse()),
        stalledMiB: toMiB(stalled),
        pausedMiB: toMiB(paused),
        readStalledMiB: toMiB(readStalled),
        committedMiB: toMiB(all.reduce((n, p) => n + p.unsafeStats().allocatedBlocks, 0)),
        backpressureAtMiB: backpressureAt === undefined ? undefined : toMiB(backpressureAt)
      } satisfies Outcome
    })
  )

const program = Effect.gen(function* () {
  const lines: Array<string> = []
  lines.push(
    "| workload | design | allocated | stalled (of which reads) | writes paused by backpressure | backpressure fired at | memory committed |"
  )
  lines.push("|---|---|---:|---:|---:|---:|---:|")
  const mib = (n: number) => `${Number(n.toFixed(1))} MiB`
  for (const workload of workloads) {
    for (const design of ["split", "unified", "unified-soft", "unified-paced"] as const) {
      const o = yield* run(design, workload)
      const label =
        design === "split"
          ? "split 128 + 128 MiB"
          : design === "unified"
            ? "unified 256 MiB"
            : design === "unified-soft"
              ? "unified 256 MiB, hard limit 320 MiB"
              : "unified 256 MiB, writers pause when exceeded"
      lines.push(
        `| ${workload.name} | ${label} | ${mib(o.allocatedMiB)} | ${mib(o.stalledMiB)} (${mib(o.readStalledMiB)}) | ${mib(
          o.pausedMiB
        )} | ${o.backpressureAtMiB === undefined ? "never" : mib(o.backpressureAtMiB)} | ${mib(o.committedMiB)} |`
      )
    }
  }
  console.log(lines.join("\n"))
})

// Blocks are left out on purpose when each run ends; the pools' close warnings are noise here.
Effect.runPromise(program.pipe(Logger.withMinimumLogLevel(LogLevel.Error))).catch((e) => {
  console.error(e)
  process.exit(1)
})
