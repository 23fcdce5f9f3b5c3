// The option checks of `Session.make` and `Session.add`: the first option out of range, its value
// and the rule, for `InvalidSessionOptions`.
import * as Duration from "effect/Duration"
import * as Option from "effect/Option"

/** An option out of range: which, its value, the rule it breaks. */
export interface Problem {
  readonly option: string
  readonly value: unknown
  readonly reason: string
}

const problem = (option: string, value: unknown, reason: string): Problem => ({ option, value, reason })

const isCount = (n: number) => Number.isSafeInteger(n) && n >= 1

/** `Session.make`'s options. */
export const checkMake = (options: {
  readonly port?: number
  readonly host?: string
  readonly peerId?: Uint8Array
  readonly encryption?: string
}): Problem | undefined => {
  if (
    options.port !== undefined &&
    !(Number.isInteger(options.port) && options.port >= 0 && options.port <= 65535)
  )
    return problem("port", options.port, "must be an integer in [0, 65535]")
  if (options.host !== undefined && options.host.length === 0) return problem("host", "", "must not be empty")
  if (options.peerId !== undefined && options.peerId.length !== 20)
    return problem("peerId", `${options.peerId.length} bytes`, "must be 20 bytes")
  if (options.encryption !== undefined && !["plaintext", "prefer", "require"].includes(options.encryption))
    return problem("encryption", options.encryption, 'must be "plaintext", "prefer" or "require"')
  return undefined
}

/** `Session.add`'s options, against the torrent's piece count. */
export const checkAdd = (options: {
  readonly maxPeers?: number
  readonly requestQueue?: number
  readonly downloadQueue?: number
  readonly sendBufferBytes?: number
  readonly uploadSlots?: number
  readonly uploadRateLimit?: number
  readonly slowStart?: { readonly initialRate: number; readonly period: Duration.DurationInput }
  readonly have?: { readonly length: number }
  readonly metainfo: { readonly pieceCount: number }
}): Problem | undefined => {
  for (const option of ["maxPeers", "requestQueue", "downloadQueue", "sendBufferBytes"] as const) {
    const value = options[option]
    if (value !== undefined && !isCount(value)) return problem(option, value, "must be a whole number >= 1")
  }
  const slots = options.uploadSlots
  if (slots !== undefined && slots !== Infinity && !isCount(slots))
    return problem("uploadSlots", slots, "must be a whole number >= 1, or Infinity")
  const limit = options.uploadRateLimit
  if (limit !== undefined && !(Number.isFinite(limit) && limit >= 0))
    return problem("uploadRateLimit", limit, "must be bytes per second >= 0 (0 for no limit)")
  if (options.slowStart !== undefined) {
    const { initialRate, period } = options.slowStart
    if (!(Number.isFinite(initialRate) && initialRate > 0))
      return problem("slowStart.initialRate", initialRate, "must be bytes per second > 0")
    const ms = Option.getOrUndefined(Duration.decodeUnknown(period))
    if (ms === undefined || !(Duration.toMillis(ms) > 0 && Duration.isFinite(ms)))
      return problem("slowStart.period", String(period), "must be a finite duration > 0")
  }
  const pieces = options.metainfo.pieceCount
  if (options.have !== undefined && options.have.length !== pieces)
    return problem(
      "have",
      `a bitfield of ${options.have.length} pieces`,
      `must have the torrent's ${pieces} pieces`
    )
  return undefined
}
