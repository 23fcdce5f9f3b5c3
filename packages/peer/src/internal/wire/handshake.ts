/**
 * The BEP 3 handshake: 19, "BitTorrent protocol", 8 reserved bytes (feature bits of BEP 5, 6 and
 * 10), the info-hash and the peer id.
 */
import * as Either from "effect/Either"
import { WireError } from "./error.js"

/**
 * "BitTorrent protocol", the BEP 3 protocol string.
 *
 * @since 0.1.0
 * @category constants
 */
export const PROTOCOL = "BitTorrent protocol"

const PROTOCOL_BYTES = new TextEncoder().encode(PROTOCOL)

/**
 * Bytes in a handshake: 1 + 19 + 8 + 20 + 20.
 *
 * @since 0.1.0
 * @category constants
 */
export const HANDSHAKE_LENGTH = 68

/**
 * A parsed handshake. `reserved`, `infoHash` and `peerId` are copies the caller owns.
 *
 * @since 0.1.0
 * @category models
 */
export interface Handshake {
  readonly reserved: Uint8Array
  readonly infoHash: Uint8Array
  readonly peerId: Uint8Array
  /** BEP 6 fast extension: `reserved[7] & 0x04`. */
  readonly fast: boolean
  /** BEP 10 extension protocol: `reserved[5] & 0x10`. */
  readonly extensions: boolean
  /** BEP 5 DHT: `reserved[7] & 0x01`. */
  readonly dht: boolean
}

/**
 * What to send in a handshake. `reserved`, if given, is sent as is, with the flags or-ed into it.
 *
 * @since 0.1.0
 * @category models
 */
export interface HandshakeInit {
  readonly infoHash: Uint8Array
  readonly peerId: Uint8Array
  readonly reserved?: Uint8Array
  readonly fast?: boolean
  readonly extensions?: boolean
  readonly dht?: boolean
}

/**
 * The 8 reserved bytes with the given feature bits set.
 *
 * @since 0.1.0
 * @category constructors
 */
export const makeReserved = (flags: {
  readonly fast?: boolean
  readonly extensions?: boolean
  readonly dht?: boolean
}): Uint8Array => {
  const reserved = new Uint8Array(8)
  if (flags.extensions) reserved[5] = 0x10
  reserved[7] = (flags.fast ? 0x04 : 0) | (flags.dht ? 0x01 : 0)
  return reserved
}

/**
 * @since 0.1.0
 * @category getters
 */
export const supportsFast = (reserved: Uint8Array): boolean => ((reserved[7] ?? 0) & 0x04) !== 0

/**
 * @since 0.1.0
 * @category getters
 */
export const supportsExtensions = (reserved: Uint8Array): boolean => ((reserved[5] ?? 0) & 0x10) !== 0

/**
 * @since 0.1.0
 * @category getters
 */
export const supportsDht = (reserved: Uint8Array): boolean => ((reserved[7] ?? 0) & 0x01) !== 0

/**
 * The 68-byte handshake. Throws a `RangeError` if `infoHash` or `peerId` is not 20 bytes (a defect).
 *
 * @since 0.1.0
 * @category encoders
 */
export const encodeHandshake = (init: HandshakeInit): Uint8Array => {
  if (init.infoHash.length !== 20)
    throw new RangeError(`info hash must be 20 bytes, got ${init.infoHash.length}`)
  if (init.peerId.length !== 20) throw new RangeError(`peer id must be 20 bytes, got ${init.peerId.length}`)
  const out = new Uint8Array(HANDSHAKE_LENGTH)
  out[0] = 19
  out.set(PROTOCOL_BYTES, 1)
  if (init.reserved !== undefined) out.set(init.reserved.subarray(0, 8), 20)
  if (init.extensions) out[25]! |= 0x10
  if (init.fast) out[27]! |= 0x04
  if (init.dht) out[27]! |= 0x01
  out.set(init.infoHash, 28)
  out.set(init.peerId, 48)
  return out
}

/**
 * Parses a complete 68-byte handshake (at `offset` in `bytes`).
 *
 * @since 0.1.0
 * @category decoders
 */
export const decodeHandshake = (bytes: Uint8Array, offset = 0): Either.Either<Handshake, WireError> => {
  if (bytes.length - offset < HANDSHAKE_LENGTH) {
    return Either.left(
      new WireError({ reason: "Handshake", offset, length: bytes.length - offset, detail: "short handshake" })
    )
  }
  const error = checkProtocol(bytes, offset, HANDSHAKE_LENGTH, 0)
  if (error !== undefined) return Either.left(error)
  return Either.right(handshakeAt(bytes, offset))
}

/** The first `available` bytes at `at` are a prefix of a handshake, or the error they already show. */
export const checkProtocol = (
  bytes: Uint8Array,
  at: number,
  available: number,
  streamOffset: number
): WireError | undefined => {
  if (available >= 1 && bytes[at] !== 19) {
    return new WireError({
      reason: "Handshake",
      offset: streamOffset,
      length: bytes[at]!,
      detail: `protocol string length ${bytes[at]}, expected 19`
    })
  }
  const n = Math.min(available - 1, 19)
  for (let i = 0; i < n; i++) {
    if (bytes[at + 1 + i] !== PROTOCOL_BYTES[i]) {
      return new WireError({
        reason: "Handshake",
        offset: streamOffset,
        detail: `protocol string is not "${PROTOCOL}"`
      })
    }
  }
  return undefined
}

/** Copies the handshake at `at` (68 bytes must be there). */
export const handshakeAt = (bytes: Uint8Array, at: number): Handshake => {
  const reserved = bytes.slice(at + 20, at + 28)
  return {
    reserved,
    infoHash: bytes.slice(at + 28, at + 48),
    peerId: bytes.slice(at + 48, at + 68),
    fast: supportsFast(reserved),
    extensions: supportsExtensions(reserved),
    dht: supportsDht(reserved)
  }
}
