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
 * @internal
 */
import * as NV8 from "node:v8"
import type { Hasher } from "@ezio/storage"

let percent = 0

const set = (value: number) => NV8.setFlagsFromString(`--heap-growing-percent=${value}`)

/** Sets the policy from EZIO_V8_HEAP_GROWING_PERCENT (default 100). @internal */
export const apply = (): void => {
  const wanted = Number(process.env.EZIO_V8_HEAP_GROWING_PERCENT ?? 100)
  percent = Number.isInteger(wanted) && wanted > 0 ? wanted : 0
  if (percent > 0) set(percent)
}

/**
 * For the hashing workers (`Hasher.make`'s `workerStart`): V8's default policy while one starts.
 * The flag is process-wide, and a worker checks Node's built-in code cache for its own modules
 * against the flags of the moment: with any flag changed it rejects the cache and compiles them
 * (~25 ms of CPU per worker start here, more for a larger worker). 0 is V8's default value, and
 * with it the cache is accepted again; the policy is back once the worker has loaded.
 *
 * @internal
 */
export const workerStart: Hasher.WorkerStartHooks = {
  before: () => {
    if (percent > 0) set(0)
  },
  after: () => {
    if (percent > 0) set(percent)
  }
}
