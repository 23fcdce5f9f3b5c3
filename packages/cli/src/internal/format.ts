// Human-readable sizes and rates, and size arguments like "256MiB".
import * as Data from "effect/Data"
import * as Effect from "effect/Effect"

export class SizeError extends Data.TaggedError("ValidationError")<{
  readonly option: string
  readonly value: string
}> {
  override get message(): string {
    return `${this.option}: "${this.value}" is not a size (examples: 16384, 16KiB, 256MiB, 1GiB)`
  }
}

const UNITS: Record<string, number> = {
  "": 1,
  b: 1,
  k: 1024,
  kb: 1000,
  kib: 1024,
  m: 1024 ** 2,
  mb: 1000 ** 2,
  mib: 1024 ** 2,
  g: 1024 ** 3,
  gb: 1000 ** 3,
  gib: 1024 ** 3,
  t: 1024 ** 4,
  tb: 1000 ** 4,
  tib: 1024 ** 4
}

export const parseSize = (value: string, option: string): Effect.Effect<number, SizeError> => {
  const match = /^\s*(\d+(?:\.\d+)?)\s*([a-zA-Z]*)\s*$/.exec(value)
  const unit = match === null ? undefined : UNITS[match[2]!.toLowerCase()]
  if (match === null || unit === undefined) return Effect.fail(new SizeError({ option, value }))
  const bytes = Math.round(Number(match[1]) * unit)
  return Number.isSafeInteger(bytes) ? Effect.succeed(bytes) : Effect.fail(new SizeError({ option, value }))
}

export const formatBytes = (bytes: number): string => {
  const units = ["B", "KiB", "MiB", "GiB", "TiB"]
  let value = bytes
  let unit = 0
  while (value >= 1024 && unit < units.length - 1) {
    value /= 1024
    unit++
  }
  return unit === 0 ? `${bytes} B` : `${value.toFixed(value >= 100 ? 0 : 1)} ${units[unit]}`
}

export const formatRate = (bytesPerSecond: number): string => `${formatBytes(bytesPerSecond)}/s`
