/** @internal */
import * as Either from "effect/Either"
import type { Options } from "./models.js"
import { InvalidPoolOptions } from "../PoolError.js"
import * as Size from "../Size.js"

/**
 * Options after defaults and validation, in blocks: what the core works with.
 *
 * @internal
 */
export interface Resolved {
  readonly name: string
  readonly blockSize: number
  readonly capacity: number // bytes, as given
  readonly lowFraction: number
  readonly highFraction: number
  readonly capacityBlocks: number
  readonly lowBlocks: number
  readonly highBlocks: number
  readonly hardLimitBlocks: number
}

/** @internal */
export const defaults = {
  blockSize: 16 * 1024,
  capacity: 256 * 1024 * 1024,
  lowWatermark: 1 / 2,
  // EZIO's 7/8; libtorrent uses 3/4.
  highWatermark: 7 / 8
} as const

const MAX_BLOCK_SIZE = 16 * 1024 * 1024
// A pool past this would not fit the typed-array offsets we use and is surely a unit mistake.
const MAX_BYTES = 2 ** 44

const isPowerOfTwo = (n: number) => Number.isInteger(n) && n > 0 && (n & (n - 1)) === 0

/** @internal */
export const resolve = (options: Options = {}): Resolved | InvalidPoolOptions => {
  const fail = (option: keyof Options, value: unknown, reason: string) =>
    new InvalidPoolOptions({ option, value, reason })

  const blockSize = options.blockSize ?? defaults.blockSize
  if (!isPowerOfTwo(blockSize) || blockSize < 512 || blockSize > MAX_BLOCK_SIZE) {
    return fail("blockSize", blockSize, `must be a power of two between 512 and ${MAX_BLOCK_SIZE} bytes`)
  }
  const capacity = options.capacity ?? defaults.capacity
  if (!Number.isSafeInteger(capacity) || capacity < blockSize || capacity > MAX_BYTES) {
    return fail("capacity", capacity, `must be a whole number of bytes, at least one block (${blockSize})`)
  }
  if (capacity % blockSize !== 0) {
    return fail("capacity", capacity, `must be a multiple of the block size (${blockSize})`)
  }
  const lowFraction = options.lowWatermark ?? defaults.lowWatermark
  if (!(Number.isFinite(lowFraction) && lowFraction >= 0 && lowFraction < 1)) {
    return fail("lowWatermark", lowFraction, "must be a fraction of the capacity in [0, 1)")
  }
  const highFraction = options.highWatermark ?? defaults.highWatermark
  if (!(Number.isFinite(highFraction) && highFraction > 0 && highFraction <= 1)) {
    return fail("highWatermark", highFraction, "must be a fraction of the capacity in (0, 1]")
  }
  const capacityBlocks = capacity / blockSize
  const lowBlocks = Math.floor(capacityBlocks * lowFraction)
  const highBlocks = Math.max(1, Math.ceil(capacityBlocks * highFraction))
  if (lowBlocks >= highBlocks) {
    return fail(
      "lowWatermark",
      lowFraction,
      `must be below the high watermark (${highFraction}); with ${capacityBlocks} blocks they give ${lowBlocks} and ${highBlocks} blocks`
    )
  }
  const hardLimit = options.hardLimit ?? capacity
  if (!Number.isSafeInteger(hardLimit) || hardLimit > MAX_BYTES) {
    return fail("hardLimit", hardLimit, "must be a whole number of bytes")
  }
  if (hardLimit < capacity) {
    return fail(
      "hardLimit",
      hardLimit,
      `must be at least the capacity (${capacity}); it only allows over-allocation`
    )
  }
  if (hardLimit % blockSize !== 0) {
    return fail("hardLimit", hardLimit, `must be a multiple of the block size (${blockSize})`)
  }
  const name = options.name ?? "default"
  return {
    name,
    blockSize,
    capacity,
    lowFraction,
    highFraction,
    capacityBlocks,
    lowBlocks,
    highBlocks,
    hardLimitBlocks: hardLimit / blockSize
  }
}

/**
 * "256MiB", "1g", "16384": the one size parser (`Size.parse`), as the Config reads it.
 *
 * @internal
 */
export const parseSize = (text: string): number | undefined => Either.getOrUndefined(Size.parse(text))
