/**
 * Byte-wise percent-encoding for tracker query strings: `info_hash` and `peer_id` are raw bytes,
 * which `URLSearchParams` (UTF-8 text) cannot express.
 */

const HEX = Array.from({ length: 256 }, (_, i) => i.toString(16).toUpperCase().padStart(2, "0"))

const unreserved = (b: number): boolean =>
  (b >= 0x30 && b <= 0x39) ||
  (b >= 0x41 && b <= 0x5a) ||
  (b >= 0x61 && b <= 0x7a) ||
  b === 0x2d ||
  b === 0x2e ||
  b === 0x5f ||
  b === 0x7e

/** RFC 3986: unreserved bytes as themselves, every other byte as `%XX`. */
export const percentEncode = (bytes: Uint8Array): string => {
  let out = ""
  for (let i = 0; i < bytes.length; i++) {
    const b = bytes[i]!
    out += unreserved(b) ? String.fromCharCode(b) : `%${HEX[b]}`
  }
  return out
}

const hexValue = (c: number): number =>
  c >= 0x30 && c <= 0x39
    ? c - 0x30
    : c >= 0x41 && c <= 0x46
      ? c - 0x37
      : c >= 0x61 && c <= 0x66
        ? c - 0x57
        : -1

/**
 * Decodes a raw (still percent-encoded) query component to bytes: `%XX` to the byte, `+` to a
 * space, other characters to their low 8 bits (Node hands raw request bytes over as latin1).
 * `undefined` for a broken `%` escape.
 */
export const percentDecode = (s: string): Uint8Array | undefined => {
  const out = new Uint8Array(s.length)
  let n = 0
  for (let i = 0; i < s.length; i++) {
    const c = s.charCodeAt(i)
    if (c === 0x25) {
      const hi = hexValue(s.charCodeAt(i + 1))
      const lo = hexValue(s.charCodeAt(i + 2))
      if (hi < 0 || lo < 0) return undefined
      out[n++] = (hi << 4) | lo
      i += 2
    } else out[n++] = c === 0x2b ? 0x20 : c & 0xff
  }
  return out.slice(0, n)
}

/** A raw query string (without `?`) as name → raw-bytes values, each name keeping every value. */
export const parseQuery = (query: string): Map<string, Array<Uint8Array>> | undefined => {
  const out = new Map<string, Array<Uint8Array>>()
  if (query.length === 0) return out
  for (const part of query.split("&")) {
    if (part.length === 0) continue
    const eq = part.indexOf("=")
    const rawName = eq < 0 ? part : part.slice(0, eq)
    const rawValue = eq < 0 ? "" : part.slice(eq + 1)
    const name = percentDecode(rawName)
    const value = percentDecode(rawValue)
    if (name === undefined || value === undefined) return undefined
    const key = Buffer.from(name).toString("latin1")
    const values = out.get(key)
    if (values === undefined) out.set(key, [value])
    else values.push(value)
  }
  return out
}

/** Lower-case hex of bytes. */
export const toHex = (bytes: Uint8Array): string =>
  Buffer.from(bytes.buffer, bytes.byteOffset, bytes.length).toString("hex")
