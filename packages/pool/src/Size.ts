/**
 * Sizes as admins write them: `16384`, `16KiB`, `256MiB`, `1g`, `1.5GiB`. One parser for the
 * pool's `Config` and every size option of the `ezio` command.
 *
 * Every unit is binary, as the disk tools here count (lsblk, partclone): `k`, `KB` and
 * `KiB` all mean 1024 bytes, `M`/`MB`/`MiB` 1024², `G`/`GB`/`GiB` 1024³, `T`/`TB`/`TiB` 1024⁴.
 * Units are case-insensitive; `B` or no unit means bytes. A fraction is fine when it comes to a
 * whole number of bytes (`1.5KiB` = 1536).
 *
 * @since 0.1.0
 */
import * as Data from "effect/Data"
import * as Either from "effect/Either"

/**
 * A text that is not a size: says which text and why.
 *
 * @since 0.1.0
 * @category errors
 */
export class InvalidSize extends Data.TaggedError("InvalidSize")<{
  readonly text: string
  readonly reason: string
}> {
  override get message(): string {
    return `"${this.text}" ${this.reason} (examples: ${examples})`
  }
}

/**
 * Examples of sizes `parse` accepts, for help texts and error messages.
 *
 * @since 0.1.0
 * @category constants
 */
export const examples = "16384, 16KiB, 256MiB, 1GiB"

const UNITS: Readonly<Record<string, number>> = {
  "": 1,
  b: 1,
  k: 1024,
  kb: 1024,
  kib: 1024,
  m: 1024 ** 2,
  mb: 1024 ** 2,
  mib: 1024 ** 2,
  g: 1024 ** 3,
  gb: 1024 ** 3,
  gib: 1024 ** 3,
  t: 1024 ** 4,
  tb: 1024 ** 4,
  tib: 1024 ** 4
}

const SIZE = /^\s*(\d+(?:\.\d+)?)\s*([a-zA-Z]*)\s*$/

/**
 * The number of bytes `text` stands for, or why it stands for none.
 *
 * @since 0.1.0
 * @category parsing
 */
export const parse = (text: string): Either.Either<number, InvalidSize> => {
  const match = SIZE.exec(text)
  if (match === null) return Either.left(new InvalidSize({ text, reason: "is not a size" }))
  const unit = UNITS[match[2]!.toLowerCase()]
  if (unit === undefined)
    return Either.left(new InvalidSize({ text, reason: `has an unknown unit "${match[2]}"` }))
  const bytes = Number(match[1]) * unit
  if (!Number.isInteger(bytes))
    return Either.left(new InvalidSize({ text, reason: "is not a whole number of bytes" }))
  if (!Number.isSafeInteger(bytes)) return Either.left(new InvalidSize({ text, reason: "is too large" }))
  return Either.right(bytes)
}

const DISPLAY_UNITS = ["B", "KiB", "MiB", "GiB", "TiB"] as const

/**
 * A size for people to read, in the largest binary unit that keeps it at or above 1 (`16.0 MiB`,
 * `256 MiB`, `1.5 GiB`, `512 B`). Rounded to three significant digits or so: for display, not
 * for `parse` to read back exactly.
 *
 * @since 0.1.0
 * @category formatting
 */
export const format = (bytes: number): string => {
  let value = bytes
  let unit = 0
  while (value >= 1024 && unit < DISPLAY_UNITS.length - 1) {
    value /= 1024
    unit++
  }
  return unit === 0 ? `${bytes} B` : `${value.toFixed(value >= 100 ? 0 : 1)} ${DISPLAY_UNITS[unit]}`
}
