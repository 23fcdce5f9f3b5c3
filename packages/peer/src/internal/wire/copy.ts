/**
 * Copying received bytes into pool blocks. Pool blocks are views of SharedArrayBuffer slabs, and
 * V8's `TypedArray.prototype.set` into shared memory copies with relaxed atomic stores, several
 * times slower than memcpy; `Buffer.prototype.fill` with a buffer value is a plain memcpy (and
 * takes any Uint8Array as `this`, so no Buffer view is made per block).
 */

const fill = Buffer.prototype.fill

/** Below this, `set`'s per-call cost is lower than `fill`'s argument checks. */
const FILL_MIN = 512

/** Copies all of `source` into `target` at `offset` (`target` must have room; no overlap). */
export const copyInto = (target: Uint8Array, source: Uint8Array, offset = 0): void => {
  const n = source.length
  if (n >= FILL_MIN && target.buffer instanceof SharedArrayBuffer) {
    fill.call(target, source, offset, offset + n)
  } else if (n > 0) {
    target.set(source, offset)
  }
}
