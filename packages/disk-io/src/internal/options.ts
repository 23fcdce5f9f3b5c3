/**
 * The engine's options after defaults and validation.
 *
 * @internal
 */
import * as Duration from "effect/Duration"
import * as Option from "effect/Option"
import { InvalidDiskIoOptions } from "../DiskIoError.js"
import type { Options } from "./models.js"

/** v2 leaf hashes cover 16 KiB (BEP 52), whatever the pool's block size. */
export const V2_BLOCK = 16 * 1024

/** @internal */
export interface Resolved {
  readonly name: string
  readonly blockSize: number
  readonly aioThreads: number
  readonly hashThreads: number
  /** Bytes a hash reads per step: a multiple of the block size and of 16 KiB. */
  readonly chunkBytes: number
  readonly chunkBlocks: number
  readonly maxWriteBlocks: number
  readonly writeCoalesceBlocks: number
  readonly writeDelay: Duration.Duration
  /** `maxQueuedBytes` in blocks: past it `write` reports `exceeded`. */
  readonly maxQueuedBlocks: number
  /** Where `awaitWritable` lets a paused download go on: half of `maxQueuedBlocks`. */
  readonly resumeQueuedBlocks: number
}

/** @internal */
export const defaults = {
  aioThreads: 4,
  hashChunkBlocks: 64,
  maxWriteBlocks: 64,
  writeCoalesceBlocks: 64,
  writeDelay: Duration.millis(100),
  maxQueuedBytes: 16 * 1024 * 1024,
  name: "default"
} as const

// More fibers or blocks per step than this is surely a unit mistake.
const MAX_COUNT = 1 << 16

/**
 * Checks `options` against the pool's block size and the hasher's threads, naming the first
 * option out of range.
 *
 * @internal
 */
export const resolve = (
  options: Options,
  blockSize: number,
  hasherThreads: number
): Resolved | InvalidDiskIoOptions => {
  const fail = (option: keyof Options, value: unknown, reason: string) =>
    new InvalidDiskIoOptions({ option, value, reason })
  const count = (option: keyof Options, value: number): InvalidDiskIoOptions | undefined =>
    Number.isSafeInteger(value) && value >= 1 && value <= MAX_COUNT
      ? undefined
      : fail(option, value, `must be a whole number from 1 to ${MAX_COUNT}`)

  const aioThreads = options.aioThreads ?? defaults.aioThreads
  const hashThreads = options.hashThreads ?? Math.max(1, Math.floor(hasherThreads))
  const hashChunkBlocks = options.hashChunkBlocks ?? defaults.hashChunkBlocks
  const maxWriteBlocks = options.maxWriteBlocks ?? defaults.maxWriteBlocks
  const writeCoalesceBlocks = options.writeCoalesceBlocks ?? defaults.writeCoalesceBlocks
  const invalid =
    count("aioThreads", aioThreads) ??
    count("hashThreads", hashThreads) ??
    count("hashChunkBlocks", hashChunkBlocks) ??
    count("maxWriteBlocks", maxWriteBlocks) ??
    count("writeCoalesceBlocks", writeCoalesceBlocks)
  if (invalid !== undefined) return invalid
  const maxQueuedBytes = options.maxQueuedBytes ?? defaults.maxQueuedBytes
  if (!Number.isSafeInteger(maxQueuedBytes) || maxQueuedBytes < 1) {
    return fail("maxQueuedBytes", maxQueuedBytes, "must be a whole number of bytes, at least 1")
  }
  const maxQueuedBlocks = Math.ceil(maxQueuedBytes / blockSize)

  const delay =
    options.writeDelay === undefined
      ? Option.some(defaults.writeDelay)
      : Duration.decodeUnknown(options.writeDelay)
  if (Option.isNone(delay) || !Duration.greaterThan(delay.value, Duration.zero)) {
    return fail("writeDelay", options.writeDelay, "must be a positive duration, such as 100 millis")
  }

  const name = options.name ?? defaults.name
  if (name === "") return fail("name", name, "must not be empty (it tags the metrics)")

  // Hash steps are whole 16 KiB leaves and whole blocks, so the v2 leaves of a step never
  // straddle two steps.
  const unit = Math.max(blockSize, V2_BLOCK)
  const chunkBytes = Math.ceil((hashChunkBlocks * blockSize) / unit) * unit
  return {
    name,
    blockSize,
    aioThreads,
    hashThreads,
    chunkBytes,
    chunkBlocks: chunkBytes / blockSize,
    maxWriteBlocks,
    writeCoalesceBlocks,
    writeDelay: delay.value,
    maxQueuedBlocks,
    resumeQueuedBlocks: Math.floor(maxQueuedBlocks / 2)
  }
}
