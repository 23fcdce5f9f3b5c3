/**
 * The BEP 6 allowed-fast set: the pieces a peer may request while choked, derived from its
 * address and the info-hash.
 */
import * as Crypto from "node:crypto"
import { u32 } from "./message.js"

/**
 * The BEP 6 allowed-fast set: `k` piece indices a peer at `ipv4` (dotted quad) may request while
 * choked, derived from its address's /24 and the info-hash, as the BEP's reference algorithm.
 * Empty for a non-IPv4 address (BEP 6 defines no IPv6 variant).
 *
 * @since 0.1.0
 * @category constructors
 */
export const allowedFastSet = (
  k: number,
  pieces: number,
  infoHash: Uint8Array,
  ipv4: string
): Array<number> => {
  const parts = ipv4
    .replace(/^::ffff:/, "")
    .split(".")
    .map(Number)
  if (parts.length !== 4 || parts.some((p) => !Number.isInteger(p) || p < 0 || p > 255)) return []
  const out: Array<number> = []
  const want = Math.min(k, pieces)
  let x: Uint8Array = new Uint8Array(4 + infoHash.length)
  x.set([parts[0]!, parts[1]!, parts[2]!, 0], 0)
  x.set(infoHash, 4)
  while (out.length < want) {
    x = Crypto.createHash("sha1").update(x).digest()
    for (let i = 0; i < 5 && out.length < want; i++) {
      const index = u32(x, i * 4) % pieces
      if (!out.includes(index)) out.push(index)
    }
  }
  return out
}
