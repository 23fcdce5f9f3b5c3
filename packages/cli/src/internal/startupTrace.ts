/**
 * Where a process's start-up goes, for the swarm bench: with EZIO_STARTUP_TRACE=1 every mark is
 * one stderr line `ezio: startup <mark> <epoch ms> <cpu ms> <monotonic µs>`: the wall clock, so
 * that the bench lines the marks of many processes up against its launch; the CPU time the
 * process (all its threads) had used, which says what a phase costs whatever else the machine is
 * doing; the monotonic clock when it was printed, the time base of a `--cpu-prof` profile. The
 * first marks come from before the bundle ran: the process's own start (`performance.timeOrigin`)
 * and what `scripts/sea-main.cjs` and `bin/run-bundle.cjs` recorded while reading and compiling
 * the bundle. Off (the default) a mark costs one boolean test.
 *
 * @internal
 */
import * as Effect from "effect/Effect"
import * as Schedule from "effect/Schedule"

/** Whether EZIO_STARTUP_TRACE=1 (read by `start`, at run time). @internal */
export let enabled = false

const seen = new Set<string>()

/** Epoch milliseconds now, to the tenth. */
const now = () => performance.timeOrigin + performance.now()

const cpuMs = () => {
  const u = process.cpuUsage()
  return (u.user + u.system) / 1000
}

const print = (name: string, at: number, cpu: number) => {
  if (seen.has(name)) return
  seen.add(name)
  process.stderr.write(
    `ezio: startup ${name} ${at.toFixed(1)} ${cpu.toFixed(1)} ${process.hrtime.bigint() / 1000n}\n`
  )
}

/** Marks `name` (once per process: later marks of the same name are dropped). @internal */
export const mark = (name: string): void => {
  if (enabled) print(name, now(), cpuMs())
}

/** `mark` as an Effect. @internal */
export const markEffect = (name: string): Effect.Effect<void> => Effect.sync(() => mark(name))

/**
 * Reads EZIO_STARTUP_TRACE and, when on, prints the marks from before the bundle ran. Called
 * once, first thing when the CLI runs (not when the module is evaluated: a startup snapshot
 * evaluates it on the build machine).
 *
 * @internal
 */
export const start = (): void => {
  enabled = process.env.EZIO_STARTUP_TRACE === "1"
  if (!enabled) return
  print("process", performance.timeOrigin, 0)
  // Set by scripts/sea-main.cjs and bin/run-bundle.cjs: [performance.now(), CPU µs] when the
  // executable's main began, when the bundle was read, when it was compiled.
  const before = (globalThis as { readonly [k: symbol]: unknown })[Symbol.for("ezio.startupMarks")]
  if (typeof before === "object" && before !== null)
    for (const [name, [at, cpu]] of Object.entries(before as Record<string, [number, number]>))
      print(name, performance.timeOrigin + at, cpu / 1000)
}

/**
 * Until the swarm's first peer and its first payload byte, polls `status` every 20 ms and marks
 * `connected` and `first-byte` (only when tracing; a no-op otherwise).
 *
 * @internal
 */
export const watchFirstBytes = (
  status: () => { readonly peers: number; readonly downloaded: number; readonly complete: boolean }
): Effect.Effect<void> => {
  if (!enabled) return Effect.void
  return Effect.sync(() => {
    const s = status()
    if (s.peers > 0) mark("connected")
    if (s.downloaded === 0 && !s.complete) return false
    mark("first-byte")
    return true
  }).pipe(Effect.repeat({ schedule: Schedule.spaced("20 millis"), until: (done) => done }), Effect.asVoid)
}
