/**
 * Magnet links (BEP 9): `xt` (urn:btih as 40 hex or 32 base32 digits, urn:btmh for v2), `dn`,
 * `tr` (repeatable) and `x.pe` (peer addresses). Pure.
 *
 * @since 0.1.0
 */
import * as Data from "effect/Data"
import * as Either from "effect/Either"

/**
 * @since 0.1.0
 * @category models
 */
export interface Magnet {
  /** v1 info-hash (20 bytes), if the link has `urn:btih`. */
  readonly infoHash?: Uint8Array
  /** v2 info-hash (32 bytes, SHA-256), if the link has `urn:btmh:1220…`. */
  readonly infoHashV2?: Uint8Array
  readonly name?: string
  readonly trackers: ReadonlyArray<string>
  /** `host:port` peers to dial (`x.pe`). */
  readonly peers: ReadonlyArray<string>
}

/**
 * @since 0.1.0
 * @category errors
 */
export class MagnetError extends Data.TaggedError("MagnetError")<{
  readonly detail: string
  readonly input: string
}> {
  override get message(): string {
    return `invalid magnet link: ${this.detail}`
  }
}

const BASE32 = "ABCDEFGHIJKLMNOPQRSTUVWXYZ234567"

const base32 = (value: string): Uint8Array | undefined => {
  const out = new Uint8Array(Math.floor((value.length * 5) / 8))
  let bits = 0
  let acc = 0
  let at = 0
  for (const char of value.toUpperCase()) {
    const digit = BASE32.indexOf(char)
    if (digit < 0) return undefined
    acc = (acc << 5) | digit
    bits += 5
    if (bits >= 8) {
      out[at++] = (acc >>> (bits - 8)) & 0xff
      bits -= 8
    }
  }
  return out
}

/**
 * @since 0.1.0
 * @category decoding
 */
export const parse = (input: string): Either.Either<Magnet, MagnetError> => {
  const fail = (detail: string) => Either.left(new MagnetError({ detail, input }))
  if (!input.startsWith("magnet:?")) return fail('it does not start with "magnet:?"')
  let infoHash: Uint8Array | undefined
  let infoHashV2: Uint8Array | undefined
  let name: string | undefined
  const trackers: Array<string> = []
  const peers: Array<string> = []
  for (const part of input.slice("magnet:?".length).split("&")) {
    if (part.length === 0) continue
    const eq = part.indexOf("=")
    const key = eq < 0 ? part : part.slice(0, eq)
    let value: string
    try {
      value = eq < 0 ? "" : decodeURIComponent(part.slice(eq + 1).replace(/\+/g, " "))
    } catch {
      return fail(`the value of "${key}" is not valid percent-encoding`)
    }
    if (key === "xt" || /^xt\.\d+$/.test(key)) {
      const lower = value.toLowerCase()
      if (lower.startsWith("urn:btih:")) {
        const digits = value.slice("urn:btih:".length)
        if (/^[0-9a-fA-F]{40}$/.test(digits)) infoHash = new Uint8Array(Buffer.from(digits, "hex"))
        else if (/^[A-Za-z2-7]{32}$/.test(digits)) infoHash = base32(digits)
        else return fail(`"${digits}" is neither 40 hex nor 32 base32 digits`)
      } else if (lower.startsWith("urn:btmh:")) {
        const digits = value.slice("urn:btmh:".length)
        if (!/^1220[0-9a-fA-F]{64}$/.test(digits)) return fail(`"${digits}" is not a SHA-256 multihash`)
        infoHashV2 = new Uint8Array(Buffer.from(digits.slice(4), "hex"))
      }
    } else if (key === "dn") name = value
    else if (key === "tr" || /^tr\.\d+$/.test(key)) trackers.push(value)
    else if (key === "x.pe") peers.push(value)
  }
  if (infoHash === undefined && infoHashV2 === undefined)
    return fail("it has no urn:btih or urn:btmh info-hash")
  return Either.right({
    ...(infoHash !== undefined ? { infoHash } : {}),
    ...(infoHashV2 !== undefined ? { infoHashV2 } : {}),
    ...(name !== undefined ? { name } : {}),
    trackers,
    peers
  })
}

// Like encodeURIComponent, but keeps the characters magnet links conventionally leave bare.
const encode = (value: string) => encodeURIComponent(value).replace(/%3A/gi, ":").replace(/%2F/gi, "/")

/**
 * Prints a magnet link: the v1 info-hash in lowercase hex, then v2, name, trackers and peers.
 *
 * @since 0.1.0
 * @category encoding
 */
export const format = (magnet: Magnet): string => {
  const parts: Array<string> = []
  if (magnet.infoHash !== undefined) parts.push(`xt=urn:btih:${Buffer.from(magnet.infoHash).toString("hex")}`)
  if (magnet.infoHashV2 !== undefined)
    parts.push(`xt=urn:btmh:1220${Buffer.from(magnet.infoHashV2).toString("hex")}`)
  if (magnet.name !== undefined) parts.push(`dn=${encode(magnet.name)}`)
  for (const tracker of magnet.trackers) parts.push(`tr=${encode(tracker)}`)
  for (const peer of magnet.peers) parts.push(`x.pe=${encode(peer)}`)
  return `magnet:?${parts.join("&")}`
}
