// Fault injection for the CLI's own tests: EZIO_FAULTS="writev=EIO@40,open=EROFS" makes every
// `writev` from the 41st on fail with EIO and every open fail with EROFS, through storage's
// `FileIo.faulty`. Unset (always, outside tests), storage uses node:fs directly.
import { FileIo } from "@ezio/storage"

const calls: ReadonlyArray<keyof FileIo.FileIo> = [
  "open",
  "close",
  "readv",
  "writev",
  "fdatasync",
  "fsync",
  "fstat",
  "ftruncate",
  "mkdir",
  "readText"
]

/** The `FileIo` EZIO_FAULTS asks for, or undefined. Malformed rules are ignored. */
export const fromEnv = (spec: string | undefined = process.env.EZIO_FAULTS): FileIo.FileIo | undefined => {
  if (spec === undefined || spec.trim() === "") return undefined
  const rules = new Map<string, { readonly code: string; readonly from: number }>()
  for (const rule of spec.split(",")) {
    const match = /^\s*(\w+)=(E[A-Z]+)(?:@(\d+))?\s*$/.exec(rule)
    if (match === null || !calls.includes(match[1] as keyof FileIo.FileIo)) continue
    rules.set(match[1]!, { code: match[2]!, from: Number(match[3] ?? 0) })
  }
  if (rules.size === 0) return undefined
  return FileIo.faulty((call, n) => {
    const rule = rules.get(call)
    return rule !== undefined && n >= rule.from ? rule.code : undefined
  })
}
