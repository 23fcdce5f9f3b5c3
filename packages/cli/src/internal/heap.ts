/**
 * V8's heap policy for the `ezio` process, applied first thing when it runs.
 *
 * The pool bounds the data in memory; what is left is the JS heap. Serving 16 KiB requests at
 * hundreds of MiB/s makes garbage at a few hundred MB/s, and by default V8 lets the old
 * generation grow to about 4x its live size before a full collection: +50..+80 MiB of dead objects
 * at the peak (`pnpm --filter @ezio/disk-io bench`). Growing by at most 30% keeps that garbage
 * to a few MiB, but a download then spends a large share of its CPU in mark-compacts (the
 * peer README's "CPU per GiB"); growing by at most 100% (2x the live size) bounds the garbage
 * at about the live heap and costs far less per byte.
 * EZIO_V8_HEAP_GROWING_PERCENT overrides it (0 restores V8's default policy).
 *
 * The young generation is capped too (EZIO_V8_SEMI_SPACE_MIB, default 4: the size V8 has grown it
 * to by the time the CLI has started; 0: V8's default). V8 doubles a semi-space each time the bytes that
 * survived scavenges since the last doubling pass its size, so the longer a transfer runs the
 * larger it gets, up to 16 MiB here, two of them resident: a 4 GiB seed ended with 17 MiB more
 * anonymous memory than a 1 GiB one for the same live data, and a download reached the 16 MiB
 * within its first GiB (the peer README's "Memory at 4 GiB"). At 4 MiB neither spent more CPU per
 * GiB (more scavenges, each as cheap: the surviving objects are the same few).
 * `--max-semi-space-size` is read only when the heap is made, and on a command line it would make
 * V8 reject the bundle's code cache; the growth factor is read at every doubling, so after each
 * scavenge the semi-space is let grow (V8's factor 2) while it is below the cap and held
 * (factor 1) once it is there. It grows by doubling from 1 MiB, so a cap that is not a power of
 * two is rounded up.
 *
 * The old generation is bounded once it is warm (EZIO_V8_OLD_SPACE_SLACK_MIB, default 3; 0: off).
 * After a mark-compact V8 lets it grow by at least 8 MiB (V8's minimum step, whatever the growing
 * percent) plus the young generation before the next: with ~9.4 MiB live a download's old space
 * went from 11.5 MiB at the end of 1 GiB (before V8's first mark-compact) to 20-22 MiB from 4 GiB
 * on. From V8's first mark-compact on, the CLI checks after each scavenge and collects the whole
 * heap itself once the old space holds more than its live size after the last full collection
 * plus the slack (or a quarter of the live size, if more: the cost per byte promoted stays bounded
 * however large the heap). The first is left to V8, so a short run (and the start) pays nothing.
 * Those collections compact for memory (`collectOldSpace`): with V8's default heuristics the
 * pages they left part full stayed committed, and the old space's pages still went from ~12 to
 * ~15 MiB over a 4 GiB download for the same 9 MiB live.
 *
 * @internal
 */
import * as NPerf from "node:perf_hooks"
import * as NV8 from "node:v8"
import * as NVm from "node:vm"
import type { Hasher } from "@ezio/storage"

let percent = 0
/** The semi-space cap in bytes (0: none) and whether its growth is held now. */
let semiCap = 0
let held = false

/** The old space's slack in bytes (0: V8's own policy), and its bound now (0: not warm yet). */
let oldSlack = 0
let oldBound = 0
/** A full, synchronous collection (V8's `gc`, taken while `--expose-gc` was on for a moment). */
let collect: (() => void) | undefined
/** Whether that collection compacts the old space for memory (`collectOldSpace`). */
let compact = true

/** V8's own value of `--semi-space-growth-factor`. */
const V8_GROWTH_FACTOR = 2

const setPercent = (value: number) => NV8.setFlagsFromString(`--heap-growing-percent=${value}`)
const setGrowth = (factor: number) => NV8.setFlagsFromString(`--semi-space-growth-factor=${factor}`)

/**
 * A semi-space's usable bytes now: new space's used + available bytes (its reported size counts
 * both semi-spaces, and only once the second is committed).
 *
 * @internal
 */
export const semiSpaceBytes = (): number => {
  const s = space("new_space")
  return s === undefined ? 0 : s.space_used_size + s.space_available_size
}

/** V8's statistics of one heap space now. */
const space = (name: string): NV8.HeapSpaceInfo | undefined =>
  NV8.getHeapSpaceStatistics().find((s) => s.space_name === name)

/** The old space's used bytes now. @internal */
export const oldSpaceBytes = (): number => space("old_space")?.space_used_size ?? 0

/** Where the old space is collected next, after a full collection left `live` bytes in it. */
const boundAfter = (live: number): number => live + Math.max(oldSlack, live / 4)

/**
 * After a scavenge: once warm, a full collection when the old space holds `used` bytes, above the
 * bound. Returns whether it collected.
 *
 * @internal
 */
export const bound = (used: number): boolean => {
  if (oldBound === 0 || used <= oldBound || collect === undefined) return false
  collectOldSpace()
  oldBound = boundAfter(oldSpaceBytes())
  return true
}

/**
 * The CLI's full collection: V8's `gc`, with V8's compaction heuristics for memory (while
 * `compactOldSpace` is on, the default). A full collection frees a page only once nothing on it is
 * live; by default V8 moves a page's survivors elsewhere only when at least 70% of it is free (at
 * most 4 MB of them, later as many as its measured compaction speed allows in its time budget), so
 * pages half full of dead objects stay committed and the old space kept growing as a transfer went
 * on. Optimizing for memory (V8's `ComputeEvacuationHeuristics`), it evacuates the pages at least
 * 20% free (at most 6 MB of survivors each time) and frees them. The flag is on for the collection alone: elsewhere it would
 * change V8's compilers and heap sizing too.
 *
 * @internal
 */
export const collectOldSpace = (): void => {
  if (collect === undefined) return
  if (!compact) return collect()
  NV8.setFlagsFromString("--optimize-for-size")
  try {
    collect()
  } finally {
    NV8.setFlagsFromString("--no-optimize-for-size")
  }
}

/** Whether the CLI's full collections compact the old space for memory (default: yes). @internal */
export const compactOldSpace = (on: boolean): void => {
  compact = on
}

/** The old space's committed bytes now: its pages, live or not. @internal */
export const oldSpaceCommitted = (): number => space("old_space")?.space_size ?? 0

/**
 * Holds or lets go of the young generation's growth for a semi-space of `bytes` usable bytes
 * (a page's header is not usable: 8 MiB of pages hold about 7.9 MiB). Returns whether it is held.
 *
 * @internal
 */
export const steer = (bytes: number): boolean => {
  const hold = semiCap > 0 && bytes >= semiCap * 0.95
  if (hold !== held) {
    held = hold
    setGrowth(hold ? 1 : V8_GROWTH_FACTOR)
  }
  return held
}

/** Sets the policy from EZIO_V8_HEAP_GROWING_PERCENT (default 100) and EZIO_V8_SEMI_SPACE_MIB (default 4). @internal */
export const apply = (): void => {
  const wanted = Number(process.env.EZIO_V8_HEAP_GROWING_PERCENT ?? 100)
  percent = Number.isInteger(wanted) && wanted > 0 ? wanted : 0
  if (percent > 0) setPercent(percent)
  const semi = Number(process.env.EZIO_V8_SEMI_SPACE_MIB ?? 4)
  const slack = Number(process.env.EZIO_V8_OLD_SPACE_SLACK_MIB ?? 3)
  boundOldSpace(Number.isInteger(slack) && slack > 0 ? slack : 0)
  capSemiSpace(Number.isInteger(semi) && semi > 0 ? semi : 0)
}

/**
 * Bounds the warm old space at its live size plus `mib` MiB (0: V8's own policy again). Takes
 * effect with the next `capSemiSpace` (its observer does the checks).
 *
 * @internal
 */
export const boundOldSpace = (mib: number): void => {
  oldSlack = mib * 1024 * 1024
  oldBound = 0
  if (oldSlack === 0 || collect !== undefined) return
  // `gc` is installed in contexts made while the flag is on; the flag goes back at once, so the
  // flags are V8's again for a code cache or a worker's start.
  NV8.setFlagsFromString("--expose-gc")
  try {
    collect = NVm.runInNewContext("gc") as () => void
  } finally {
    NV8.setFlagsFromString("--no-expose-gc")
  }
}

let observer: NPerf.PerformanceObserver | undefined

/**
 * Caps the semi-space at `mib` MiB (0: V8's own policy again): checked after every scavenge, the
 * only collection that grows it. A scavenge costs far more than the check (~2 µs).
 *
 * @internal
 */
export const capSemiSpace = (mib: number): void => {
  observer?.disconnect()
  observer = undefined
  semiCap = mib * 1024 * 1024
  steer(semiSpaceBytes())
  if (semiCap === 0 && oldSlack === 0) return
  // Entries come in batches, after the collections: one check covers the batch's collections.
  observer = new NPerf.PerformanceObserver((list) => {
    let scavenged = false
    let major = false
    for (const entry of list.getEntries()) {
      const kind = (entry as unknown as { readonly detail?: { readonly kind?: number } }).detail?.kind
      if (kind === NPerf.constants.NODE_PERFORMANCE_GC_MINOR) scavenged = true
      else if (kind === NPerf.constants.NODE_PERFORMANCE_GC_MAJOR) major = true
    }
    if (!scavenged && !major) return
    let semi = 0
    let old = 0
    for (const s of NV8.getHeapSpaceStatistics()) {
      if (s.space_name === "new_space") semi = s.space_used_size + s.space_available_size
      else if (s.space_name === "old_space") old = s.space_used_size
    }
    if (semiCap > 0 && scavenged) steer(semi)
    if (oldSlack === 0) return
    // V8's own mark-compact (the first warms the bound), or ours: what it left is about the live size.
    if (major) oldBound = boundAfter(old)
    else bound(old)
  })
  observer.observe({ entryTypes: ["gc"] })
}

/**
 * For the hashing workers (`Hasher.make`'s `workerStart`): V8's default policy while one starts.
 * The flags are process-wide, and a worker checks Node's built-in code cache for its own modules
 * against the flags of the moment: with any flag changed it rejects the cache and compiles them
 * (~25 ms of CPU per worker start here, more for a larger worker). 0 and 2 are V8's default
 * values, and with them the cache is accepted again; the policy is back once the worker has loaded.
 *
 * @internal
 */
export const workerStart: Hasher.WorkerStartHooks = {
  before: () => {
    if (percent > 0) setPercent(0)
    if (held) setGrowth(V8_GROWTH_FACTOR)
  },
  after: () => {
    if (percent > 0) setPercent(percent)
    if (held) setGrowth(1)
  }
}
