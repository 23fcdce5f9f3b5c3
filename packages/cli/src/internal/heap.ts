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

/** Sets the policy from EZIO_V8_HEAP_GROWING_PERCENT (default 100). @internal */
export const apply = (): void => {
  const percent = Number(process.env.EZIO_V8_HEAP_GROWING_PERCENT ?? 100)
  if (Number.isInteger(percent) && percent > 0) NV8.setFlagsFromString(`--heap-growing-percent=${percent}`)
}
