/**
 * The BitTorrent peer wire protocol (BEP 3) with the fast extension (BEP 6) and the extension
 * protocol (BEP 10): encoders returning `Uint8Array`s, and an incremental `FrameParser` fed the
 * chunks a socket delivers. Everything here is plain JS (no Effect), for the per-block hot path.
 *
 * @since 0.1.0
 */
import * as Crypto from "node:crypto"
import * as Data from "effect/Data"
import * as Either from "effect/Either"
import { Bencode } from "@ezio/torrent"

// ---------------------------------------------------------------------------------------------
// errors
// ---------------------------------------------------------------------------------------------

/**
 * Why a peer's byte stream was refused:
 * - `"Handshake"`: not a BitTorrent handshake (pstrlen is not 19 or pstr is not "BitTorrent protocol");
 * - `"Oversized"`: a length prefix (or a piece block) above the configured limit;
 * - `"UnknownMessage"`: a message id this codec does not know, when `unknownMessages` is `"error"`;
 * - `"Malformed"`: a payload of the wrong length for its message id, or an undecodable extension handshake.
 *
 * @since 0.1.0
 * @category models
 */
export type WireErrorReason = "Handshake" | "Oversized" | "UnknownMessage" | "Malformed"

/**
 * @since 0.1.0
 * @category errors
 */
export class WireError extends Data.TaggedError("WireError")<{
  readonly reason: WireErrorReason
  /** The message id, when the frame got that far. */
  readonly messageId?: number
  /** Offset in the peer's byte stream (handshake included) where the offending frame starts. */
  readonly offset: number
  /** The frame's length prefix (or the offending length). */
  readonly length?: number
  /** The limit `length` broke, for `"Oversized"`. */
  readonly limit?: number
  readonly detail?: string
}> {
  override get message(): string {
    const facts = [
      this.messageId === undefined ? undefined : `message id ${this.messageId}`,
      `stream offset ${this.offset}`,
      this.length === undefined ? undefined : `length ${this.length}`,
      this.limit === undefined ? undefined : `limit ${this.limit}`
    ].filter((x) => x !== undefined)
    return `peer wire: ${describeReason[this.reason]} (${facts.join(", ")})${this.detail === undefined ? "" : `: ${this.detail}`}`
  }
}

const describeReason: Record<WireErrorReason, string> = {
  Handshake: "not a BitTorrent handshake",
  Oversized: "message longer than allowed",
  UnknownMessage: "unknown message id",
  Malformed: "malformed message"
}

// ---------------------------------------------------------------------------------------------
// handshake
// ---------------------------------------------------------------------------------------------

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

const checkProtocol = (bytes: Uint8Array, at: number, available: number, streamOffset: number) => {
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

const handshakeAt = (bytes: Uint8Array, at: number): Handshake => {
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

// ---------------------------------------------------------------------------------------------
// messages
// ---------------------------------------------------------------------------------------------

/**
 * Message ids on the wire.
 *
 * @since 0.1.0
 * @category constants
 */
export const MessageId = {
  Choke: 0,
  Unchoke: 1,
  Interested: 2,
  NotInterested: 3,
  Have: 4,
  Bitfield: 5,
  Request: 6,
  Piece: 7,
  Cancel: 8,
  Port: 9,
  Suggest: 0x0d,
  HaveAll: 0x0e,
  HaveNone: 0x0f,
  RejectRequest: 0x10,
  AllowedFast: 0x11,
  Extended: 20
} as const

/** @since 0.1.0 @category models */
export interface KeepAlive {
  readonly _tag: "KeepAlive"
}
/** @since 0.1.0 @category models */
export interface Choke {
  readonly _tag: "Choke"
}
/** @since 0.1.0 @category models */
export interface Unchoke {
  readonly _tag: "Unchoke"
}
/** @since 0.1.0 @category models */
export interface Interested {
  readonly _tag: "Interested"
}
/** @since 0.1.0 @category models */
export interface NotInterested {
  readonly _tag: "NotInterested"
}
/** @since 0.1.0 @category models */
export interface HaveAll {
  readonly _tag: "HaveAll"
}
/** @since 0.1.0 @category models */
export interface HaveNone {
  readonly _tag: "HaveNone"
}
/** @since 0.1.0 @category models */
export interface Have {
  readonly _tag: "Have"
  readonly index: number
}
/** BEP 6 suggest-piece. @since 0.1.0 @category models */
export interface Suggest {
  readonly _tag: "Suggest"
  readonly index: number
}
/** BEP 6 allowed-fast. @since 0.1.0 @category models */
export interface AllowedFast {
  readonly _tag: "AllowedFast"
  readonly index: number
}
/**
 * The sender's have-bitfield (piece 0 is the high bit of byte 0). A copy the receiver owns.
 *
 * @since 0.1.0
 * @category models
 */
export interface Bitfield {
  readonly _tag: "Bitfield"
  readonly bits: Uint8Array
}
/** @since 0.1.0 @category models */
export interface Request {
  readonly _tag: "Request"
  readonly index: number
  readonly begin: number
  readonly length: number
}
/** @since 0.1.0 @category models */
export interface Cancel {
  readonly _tag: "Cancel"
  readonly index: number
  readonly begin: number
  readonly length: number
}
/** BEP 6 reject-request. @since 0.1.0 @category models */
export interface RejectRequest {
  readonly _tag: "RejectRequest"
  readonly index: number
  readonly begin: number
  readonly length: number
}
/**
 * A block of piece `index` at `begin`. From a `FrameParser`, `block` is either a view of the
 * parser's input (valid only until the next `feed`: consume or copy it in the callback) or the
 * buffer the parser's `blockTarget` returned (then the caller owns it).
 *
 * @since 0.1.0
 * @category models
 */
export interface Piece {
  readonly _tag: "Piece"
  readonly index: number
  readonly begin: number
  readonly block: Uint8Array
}
/** The sender's DHT port (BEP 5). @since 0.1.0 @category models */
export interface Port {
  readonly _tag: "Port"
  readonly port: number
}
/**
 * A BEP 10 message: `extendedId` 0 is the extension handshake (see `decodeExtensionHandshake`),
 * others are ids the receiver announced in its handshake's `m`. `payload` is a copy.
 *
 * @since 0.1.0
 * @category models
 */
export interface Extended {
  readonly _tag: "Extended"
  readonly extendedId: number
  readonly payload: Uint8Array
}
/**
 * A message id this codec does not know (with `unknownMessages: "pass"`, the default). BEP 3 asks
 * receivers to ignore those; `payload` is a copy.
 *
 * @since 0.1.0
 * @category models
 */
export interface Unknown {
  readonly _tag: "Unknown"
  readonly id: number
  readonly payload: Uint8Array
}

/**
 * Every message after the handshake.
 *
 * @since 0.1.0
 * @category models
 */
export type Message =
  | KeepAlive
  | Choke
  | Unchoke
  | Interested
  | NotInterested
  | Have
  | Bitfield
  | Request
  | Piece
  | Cancel
  | Port
  | Suggest
  | HaveAll
  | HaveNone
  | RejectRequest
  | AllowedFast
  | Extended
  | Unknown

const keepAliveMessage: KeepAlive = Object.freeze({ _tag: "KeepAlive" })
const chokeMessage: Choke = Object.freeze({ _tag: "Choke" })
const unchokeMessage: Unchoke = Object.freeze({ _tag: "Unchoke" })
const interestedMessage: Interested = Object.freeze({ _tag: "Interested" })
const notInterestedMessage: NotInterested = Object.freeze({ _tag: "NotInterested" })
const haveAllMessage: HaveAll = Object.freeze({ _tag: "HaveAll" })
const haveNoneMessage: HaveNone = Object.freeze({ _tag: "HaveNone" })

// ---------------------------------------------------------------------------------------------
// encoders
// ---------------------------------------------------------------------------------------------

const u32 = (b: Uint8Array, at: number): number =>
  b[at]! * 0x1000000 + ((b[at + 1]! << 16) | (b[at + 2]! << 8) | b[at + 3]!)

const putU32 = (b: Uint8Array, at: number, v: number): void => {
  b[at] = v >>> 24
  b[at + 1] = (v >>> 16) & 0xff
  b[at + 2] = (v >>> 8) & 0xff
  b[at + 3] = v & 0xff
}

const frame = (payloadLength: number, id: number): Uint8Array => {
  const out = new Uint8Array(5 + payloadLength)
  putU32(out, 0, payloadLength + 1)
  out[4] = id
  return out
}

const simple = (id: number): Uint8Array => frame(0, id)

const indexed = (id: number, index: number): Uint8Array => {
  const out = frame(4, id)
  putU32(out, 5, index)
  return out
}

const triple = (id: number, index: number, begin: number, length: number): Uint8Array => {
  const out = frame(12, id)
  putU32(out, 5, index)
  putU32(out, 9, begin)
  putU32(out, 13, length)
  return out
}

/**
 * The 4 zero bytes of a keep-alive.
 *
 * @since 0.1.0
 * @category encoders
 */
export const encodeKeepAlive = (): Uint8Array => new Uint8Array(4)

/** @since 0.1.0 @category encoders */
export const encodeHave = (index: number): Uint8Array => indexed(MessageId.Have, index)

/** @since 0.1.0 @category encoders */
export const encodeRequest = (index: number, begin: number, length: number): Uint8Array =>
  triple(MessageId.Request, index, begin, length)

/** @since 0.1.0 @category encoders */
export const encodeCancel = (index: number, begin: number, length: number): Uint8Array =>
  triple(MessageId.Cancel, index, begin, length)

/** @since 0.1.0 @category encoders */
export const encodeRejectRequest = (index: number, begin: number, length: number): Uint8Array =>
  triple(MessageId.RejectRequest, index, begin, length)

/** @since 0.1.0 @category encoders */
export const encodeBitfield = (bits: Uint8Array): Uint8Array => {
  const out = frame(bits.length, MessageId.Bitfield)
  out.set(bits, 5)
  return out
}

/**
 * The 13-byte header of a piece message carrying `length` block bytes: send it, then the block
 * (`socket.writev`/cork, or `socket.write` twice), so a pool block goes out without a copy.
 *
 * @since 0.1.0
 * @category encoders
 */
export const pieceHeader = (index: number, begin: number, length: number): Uint8Array => {
  const out = new Uint8Array(13)
  putU32(out, 0, length + 9)
  out[4] = MessageId.Piece
  putU32(out, 5, index)
  putU32(out, 9, begin)
  return out
}

/**
 * A BEP 10 message: `extendedId` 0 for the handshake, else the id the receiver chose in its `m`.
 *
 * @since 0.1.0
 * @category encoders
 */
export const encodeExtended = (extendedId: number, payload: Uint8Array): Uint8Array => {
  const out = frame(1 + payload.length, MessageId.Extended)
  out[5] = extendedId
  out.set(payload, 6)
  return out
}

/**
 * Any message as one frame (a piece message copies its block: prefer `pieceHeader` for sending).
 *
 * @since 0.1.0
 * @category encoders
 */
export const encode = (message: Message): Uint8Array => {
  switch (message._tag) {
    case "KeepAlive":
      return encodeKeepAlive()
    case "Choke":
      return simple(MessageId.Choke)
    case "Unchoke":
      return simple(MessageId.Unchoke)
    case "Interested":
      return simple(MessageId.Interested)
    case "NotInterested":
      return simple(MessageId.NotInterested)
    case "HaveAll":
      return simple(MessageId.HaveAll)
    case "HaveNone":
      return simple(MessageId.HaveNone)
    case "Have":
      return indexed(MessageId.Have, message.index)
    case "Suggest":
      return indexed(MessageId.Suggest, message.index)
    case "AllowedFast":
      return indexed(MessageId.AllowedFast, message.index)
    case "Bitfield":
      return encodeBitfield(message.bits)
    case "Request":
      return triple(MessageId.Request, message.index, message.begin, message.length)
    case "Cancel":
      return triple(MessageId.Cancel, message.index, message.begin, message.length)
    case "RejectRequest":
      return triple(MessageId.RejectRequest, message.index, message.begin, message.length)
    case "Piece": {
      const out = new Uint8Array(13 + message.block.length)
      out.set(pieceHeader(message.index, message.begin, message.block.length), 0)
      out.set(message.block, 13)
      return out
    }
    case "Port": {
      const out = frame(2, MessageId.Port)
      out[5] = (message.port >>> 8) & 0xff
      out[6] = message.port & 0xff
      return out
    }
    case "Extended":
      return encodeExtended(message.extendedId, message.payload)
    case "Unknown": {
      const out = frame(message.payload.length, message.id)
      out.set(message.payload, 5)
      return out
    }
  }
}

// ---------------------------------------------------------------------------------------------
// BEP 10 extension handshake
// ---------------------------------------------------------------------------------------------

/**
 * The BEP 10 extension handshake (extended message 0). `m` maps extension names to the ids the
 * sender wants to receive them under (0 disables). `raw` holds the whole decoded dictionary, for
 * keys this type does not name.
 *
 * @since 0.1.0
 * @category models
 */
export interface ExtensionHandshake {
  readonly m: Readonly<Record<string, number>>
  /** Client name and version, e.g. "ezio 0.1.0". */
  readonly v?: string
  /** How many outstanding requests the sender accepts (libtorrent's default is 500). */
  readonly reqq?: number
  /** The sender's listen port. */
  readonly p?: number
  /** The receiver's address as the sender sees it: 4 (IPv4) or 16 (IPv6) bytes. */
  readonly yourip?: Uint8Array
  /** BEP 9 metadata size, if the sender has the info dictionary. */
  readonly metadataSize?: number
  readonly raw?: Bencode.Dict
}

/**
 * The extension handshake as a complete frame (extended message 0).
 *
 * @since 0.1.0
 * @category encoders
 */
export const encodeExtensionHandshake = (handshake: ExtensionHandshake): Uint8Array => {
  const m: Record<string, Bencode.Value> = {}
  for (const [name, id] of Object.entries(handshake.m)) m[Bencode.key(name)] = id
  const dict: Record<string, Bencode.Value> = { ...(handshake.raw ?? {}), m }
  if (handshake.v !== undefined) dict["v"] = Bencode.text(handshake.v)
  if (handshake.reqq !== undefined) dict["reqq"] = handshake.reqq
  if (handshake.p !== undefined) dict["p"] = handshake.p
  if (handshake.yourip !== undefined) dict["yourip"] = handshake.yourip
  if (handshake.metadataSize !== undefined) dict["metadata_size"] = handshake.metadataSize
  return encodeExtended(0, Bencode.encode(dict))
}

/**
 * Decodes an extension handshake's payload (an `Extended` message with `extendedId` 0). Lenient
 * about fields of the wrong type (they are dropped, as libtorrent does); strict about the bencoding.
 *
 * @since 0.1.0
 * @category decoders
 */
export const decodeExtensionHandshake = (
  payload: Uint8Array
): Either.Either<ExtensionHandshake, WireError> => {
  const decoded = Bencode.decode(payload, { allowUnsortedKeys: true })
  if (Either.isLeft(decoded)) {
    return Either.left(
      new WireError({
        reason: "Malformed",
        messageId: MessageId.Extended,
        offset: decoded.left.offset,
        length: payload.length,
        detail: `extension handshake: ${decoded.left.reason}`
      })
    )
  }
  const dict = decoded.right
  if (!Bencode.isDict(dict)) {
    return Either.left(
      new WireError({
        reason: "Malformed",
        messageId: MessageId.Extended,
        offset: 0,
        length: payload.length,
        detail: "extension handshake is not a dictionary"
      })
    )
  }
  const m: Record<string, number> = {}
  const rawM = dict["m"]
  if (Bencode.isDict(rawM)) {
    for (const [name, id] of Object.entries(rawM)) if (typeof id === "number") m[Bencode.keyText(name)] = id
  }
  const v = dict["v"]
  const reqq = dict["reqq"]
  const p = dict["p"]
  const yourip = dict["yourip"]
  const metadataSize = dict["metadata_size"]
  return Either.right({
    m,
    ...(v instanceof Uint8Array ? { v: Bencode.toText(v) } : {}),
    ...(typeof reqq === "number" ? { reqq } : {}),
    ...(typeof p === "number" ? { p } : {}),
    ...(yourip instanceof Uint8Array && (yourip.length === 4 || yourip.length === 16) ? { yourip } : {}),
    ...(typeof metadataSize === "number" ? { metadataSize } : {}),
    raw: dict
  })
}

// ---------------------------------------------------------------------------------------------
// BEP 6 allowed-fast set, peer ids
// ---------------------------------------------------------------------------------------------

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

/**
 * A 20-byte peer id in Azureus style: `prefix` (e.g. "-EZ0100-") then random printable bytes.
 *
 * @since 0.1.0
 * @category constructors
 */
export const generatePeerId = (prefix = "-EZ0100-"): Uint8Array => {
  const out = new Uint8Array(20)
  const head = new TextEncoder().encode(prefix).subarray(0, 20)
  out.set(head)
  const alphabet = "0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"
  const random = Crypto.randomBytes(20)
  for (let i = head.length; i < 20; i++) out[i] = alphabet.charCodeAt(random[i]! % alphabet.length)
  return out
}

// ---------------------------------------------------------------------------------------------
// the frame parser
// ---------------------------------------------------------------------------------------------

/**
 * The default largest block a piece message may carry: 16 KiB, what every client requests.
 *
 * @since 0.1.0
 * @category constants
 */
export const DEFAULT_MAX_BLOCK = 16 * 1024

/**
 * The default largest extended message payload: a 16 KiB BEP 9 metadata piece plus its header.
 *
 * @since 0.1.0
 * @category constants
 */
export const DEFAULT_MAX_EXTENDED = 16 * 1024 + 1024

/**
 * @since 0.1.0
 * @category models
 */
export interface ParserOptions {
  /** Parse a 68-byte handshake before the messages. Default true. */
  readonly handshake?: boolean
  /** The torrent's piece count, if known: sizes the bitfield limit and checks bitfield lengths. */
  readonly pieces?: number
  /** Largest block a piece message may carry. Default 16 KiB. */
  readonly maxBlockLength?: number
  /**
   * Largest accepted length prefix. Default:
   * max(maxBlockLength + 9, bitfield bytes + 1, `DEFAULT_MAX_EXTENDED` + 2).
   */
  readonly maxMessageLength?: number
  /**
   * Message ids this codec does not know: `"pass"` (default) emits them as `Unknown` (BEP 3:
   * ignore them), `"error"` fails with reason `"UnknownMessage"`.
   */
  readonly unknownMessages?: "pass" | "error"
  /**
   * Where piece blocks go. Called once a piece message's 13-byte header is in; a returned buffer
   * (at least `length` bytes) receives the block as its bytes arrive (no intermediate buffering)
   * and the emitted `Piece.block` is `target.subarray(0, length)`. Returning `undefined` (say the
   * pool is exhausted, or the block was not requested) makes that block a view as without this option.
   */
  readonly blockTarget?: (index: number, begin: number, length: number) => Uint8Array | undefined
}

/**
 * The largest length prefix a parser with these options accepts.
 *
 * @since 0.1.0
 * @category getters
 */
export const maxMessageLength = (options: ParserOptions = {}): number =>
  options.maxMessageLength ??
  Math.max(
    (options.maxBlockLength ?? DEFAULT_MAX_BLOCK) + 9,
    options.pieces === undefined ? 0 : Math.ceil(options.pieces / 8) + 1,
    DEFAULT_MAX_EXTENDED + 2
  )

/**
 * Callbacks a `FrameParser` delivers to, synchronously from `feed`.
 *
 * @since 0.1.0
 * @category models
 */
export interface ParserHandlers {
  readonly onHandshake?: (handshake: Handshake) => void
  readonly onMessage: (message: Message) => void
}

const enum State {
  Handshake,
  Frame,
  Body
}

/**
 * An incremental parser of one peer's byte stream: the handshake (unless `handshake: false`),
 * then length-prefixed messages. Feed it chunks in arrival order; it calls the handlers
 * synchronously for every complete message and keeps partial frames for the next chunk. Only
 * frames split across chunks are copied; a frame inside one chunk is decoded in place.
 *
 * After an error the parser stays failed: every later `feed` returns the same `WireError`.
 *
 * @since 0.1.0
 * @category models
 */
export class FrameParser {
  private state: State
  private failed: WireError | undefined = undefined
  /** Bytes of the peer's stream consumed before the current chunk. */
  private streamOffset = 0
  private pending: Uint8Array
  private pendingLength = 0
  private frameLength = 0
  /** The current frame's blockTarget already said no. */
  private declined = false
  private bodyTarget: Uint8Array = new Uint8Array(0)
  private bodyIndex = 0
  private bodyBegin = 0
  private bodyLength = 0
  private bodyFilled = 0
  private readonly maxLength: number
  private readonly maxBlock: number
  private readonly pieces: number | undefined
  private readonly passUnknown: boolean
  private readonly blockTarget: ParserOptions["blockTarget"]

  constructor(
    private readonly handlers: ParserHandlers,
    options: ParserOptions = {}
  ) {
    this.state = options.handshake === false ? State.Frame : State.Handshake
    this.maxLength = maxMessageLength(options)
    this.maxBlock = options.maxBlockLength ?? DEFAULT_MAX_BLOCK
    this.pieces = options.pieces
    this.passUnknown = options.unknownMessages !== "error"
    this.blockTarget = options.blockTarget
    this.pending = new Uint8Array(HANDSHAKE_LENGTH)
  }

  /** The error that stopped the parser, if any. */
  get error(): WireError | undefined {
    return this.failed
  }

  /** True once the handshake was parsed (or was not expected). */
  get handshakeDone(): boolean {
    return this.state !== State.Handshake
  }

  /** Bytes of the peer's stream consumed so far. */
  get offset(): number {
    return this.streamOffset
  }

  /** Bytes held for an incomplete frame (a block being streamed into its target counts too). */
  get buffered(): number {
    return this.state === State.Body ? 13 + this.bodyFilled : this.pendingLength
  }

  /**
   * Consumes `chunk`, calling the handlers for every message it completes. Returns the error that
   * stops the stream, if any (the handlers see nothing past it). Exceptions thrown by handlers
   * propagate and leave the parser in an unspecified state.
   */
  feed(chunk: Uint8Array): WireError | undefined {
    if (this.failed !== undefined) return this.failed
    const n = chunk.length
    let pos = 0
    while (pos < n) {
      switch (this.state) {
        case State.Handshake: {
          const take = Math.min(HANDSHAKE_LENGTH - this.pendingLength, n - pos)
          this.pending.set(chunk.subarray(pos, pos + take), this.pendingLength)
          this.pendingLength += take
          pos += take
          const error = checkProtocol(this.pending, 0, this.pendingLength, 0)
          if (error !== undefined) return this.fail(error)
          if (this.pendingLength < HANDSHAKE_LENGTH) break
          const handshake = handshakeAt(this.pending, 0)
          this.pendingLength = 0
          this.state = State.Frame
          this.handlers.onHandshake?.(handshake)
          break
        }
        case State.Body: {
          const take = Math.min(this.bodyLength - this.bodyFilled, n - pos)
          this.bodyTarget.set(chunk.subarray(pos, pos + take), this.bodyFilled)
          this.bodyFilled += take
          pos += take
          if (this.bodyFilled === this.bodyLength) {
            this.state = State.Frame
            this.declined = false
            this.handlers.onMessage({
              _tag: "Piece",
              index: this.bodyIndex,
              begin: this.bodyBegin,
              block: this.bodyTarget.subarray(0, this.bodyLength)
            })
          }
          break
        }
        case State.Frame: {
          const frameStart = this.streamOffset + pos
          if (this.pendingLength === 0 && n - pos >= 4) {
            // fast path: the frame's header is in this chunk
            const length = u32(chunk, pos)
            if (length > this.maxLength) return this.fail(this.oversized(chunk[pos + 4], frameStart, length))
            if (n - pos >= 4 + length) {
              const error = this.dispatch(chunk, pos + 4, length, frameStart, true)
              if (error !== undefined) return this.fail(error)
              pos += 4 + length
              break
            }
            if (
              this.blockTarget !== undefined &&
              length > 9 &&
              n - pos >= 13 &&
              chunk[pos + 4] === MessageId.Piece
            ) {
              const error = this.startBody(chunk, pos + 4, length, frameStart)
              if (error !== undefined) return this.fail(error)
              if (this.inBody()) {
                pos += 13
                break
              }
            }
          }
          // slow path: accumulate the frame in `pending`
          let want = 4
          let stage: "length" | "id" | "header" | "full" = "length"
          if (this.pendingLength >= 4) {
            want = 4 + this.frameLength
            stage = "full"
            if (this.blockTarget !== undefined && !this.declined && this.frameLength > 9) {
              if (this.pendingLength < 5) {
                want = 5
                stage = "id"
              } else if (this.pending[4] === MessageId.Piece) {
                want = 13
                stage = "header"
              }
            }
          }
          const take = Math.min(want - this.pendingLength, n - pos)
          this.pending.set(chunk.subarray(pos, pos + take), this.pendingLength)
          this.pendingLength += take
          pos += take
          if (this.pendingLength < want) break
          const start = this.streamOffset + pos - this.pendingLength
          if (stage === "length") {
            const length = u32(this.pending, 0)
            if (length > this.maxLength) return this.fail(this.oversized(undefined, start, length))
            this.frameLength = length
            if (this.pending.length < 4 + length) {
              const grown = new Uint8Array(Math.max(4 + length, this.pending.length * 2))
              grown.set(this.pending.subarray(0, 4))
              this.pending = grown
            }
            if (length === 0) {
              this.pendingLength = 0
              this.handlers.onMessage(keepAliveMessage)
            }
            break
          }
          if (stage === "id") break
          if (stage === "header") {
            const error = this.startBody(this.pending, 4, this.frameLength, start)
            if (error !== undefined) return this.fail(error)
            if (this.inBody()) this.pendingLength = 0
            break
          }
          this.pendingLength = 0
          const error = this.dispatch(this.pending, 4, this.frameLength, start, !this.declined)
          this.declined = false
          if (error !== undefined) return this.fail(error)
          break
        }
      }
    }
    this.streamOffset += n
    return undefined
  }

  private inBody(): boolean {
    return this.state === State.Body
  }

  private fail(error: WireError): WireError {
    this.failed = error
    return error
  }

  private oversized(id: number | undefined, offset: number, length: number): WireError {
    return new WireError({
      reason: "Oversized",
      ...(id === undefined ? {} : { messageId: id }),
      offset,
      length,
      limit: this.maxLength
    })
  }

  /** A piece message's header is at `at` (id byte) in `bytes`: ask for a target, maybe enter Body. */
  private startBody(bytes: Uint8Array, at: number, length: number, offset: number): WireError | undefined {
    const blockLength = length - 9
    if (blockLength > this.maxBlock) {
      return new WireError({
        reason: "Oversized",
        messageId: MessageId.Piece,
        offset,
        length: blockLength,
        limit: this.maxBlock,
        detail: "piece block"
      })
    }
    const index = u32(bytes, at + 1)
    const begin = u32(bytes, at + 5)
    const target = this.blockTarget!(index, begin, blockLength)
    if (target === undefined || target.length < blockLength) {
      this.declined = true
      return undefined
    }
    this.bodyTarget = target
    this.bodyIndex = index
    this.bodyBegin = begin
    this.bodyLength = blockLength
    this.bodyFilled = 0
    this.state = State.Body
    return undefined
  }

  /** Decodes the complete message whose id byte is at `at` and emits it. */
  private dispatch(
    bytes: Uint8Array,
    at: number,
    length: number,
    offset: number,
    mayTarget: boolean
  ): WireError | undefined {
    const emit = this.handlers.onMessage
    if (length === 0) {
      emit(keepAliveMessage)
      return undefined
    }
    const id = bytes[at]!
    const payload = length - 1
    const malformed = (expected: string) =>
      new WireError({ reason: "Malformed", messageId: id, offset, length, detail: `expected ${expected}` })
    switch (id) {
      case MessageId.Choke:
      case MessageId.Unchoke:
      case MessageId.Interested:
      case MessageId.NotInterested:
      case MessageId.HaveAll:
      case MessageId.HaveNone:
        if (payload !== 0) return malformed("no payload")
        emit(
          id === MessageId.Choke
            ? chokeMessage
            : id === MessageId.Unchoke
              ? unchokeMessage
              : id === MessageId.Interested
                ? interestedMessage
                : id === MessageId.NotInterested
                  ? notInterestedMessage
                  : id === MessageId.HaveAll
                    ? haveAllMessage
                    : haveNoneMessage
        )
        return undefined
      case MessageId.Have:
      case MessageId.Suggest:
      case MessageId.AllowedFast: {
        if (payload !== 4) return malformed("a 4-byte payload")
        const index = u32(bytes, at + 1)
        emit(
          id === MessageId.Have
            ? { _tag: "Have", index }
            : id === MessageId.Suggest
              ? { _tag: "Suggest", index }
              : { _tag: "AllowedFast", index }
        )
        return undefined
      }
      case MessageId.Request:
      case MessageId.Cancel:
      case MessageId.RejectRequest: {
        if (payload !== 12) return malformed("a 12-byte payload")
        const index = u32(bytes, at + 1)
        const begin = u32(bytes, at + 5)
        const blockLength = u32(bytes, at + 9)
        emit({
          _tag: id === MessageId.Request ? "Request" : id === MessageId.Cancel ? "Cancel" : "RejectRequest",
          index,
          begin,
          length: blockLength
        })
        return undefined
      }
      case MessageId.Bitfield: {
        if (this.pieces !== undefined && payload !== Math.ceil(this.pieces / 8)) {
          return malformed(`a ${Math.ceil(this.pieces / 8)}-byte bitfield for ${this.pieces} pieces`)
        }
        emit({ _tag: "Bitfield", bits: bytes.slice(at + 1, at + length) })
        return undefined
      }
      case MessageId.Piece: {
        if (payload < 8) return malformed("at least 8 payload bytes")
        const blockLength = payload - 8
        if (blockLength > this.maxBlock) {
          return new WireError({
            reason: "Oversized",
            messageId: id,
            offset,
            length: blockLength,
            limit: this.maxBlock,
            detail: "piece block"
          })
        }
        const index = u32(bytes, at + 1)
        const begin = u32(bytes, at + 5)
        const view = bytes.subarray(at + 9, at + length)
        if (mayTarget && this.blockTarget !== undefined) {
          const target = this.blockTarget(index, begin, blockLength)
          if (target !== undefined && target.length >= blockLength) {
            target.set(view)
            emit({ _tag: "Piece", index, begin, block: target.subarray(0, blockLength) })
            return undefined
          }
        }
        emit({ _tag: "Piece", index, begin, block: view })
        return undefined
      }
      case MessageId.Port:
        if (payload !== 2) return malformed("a 2-byte payload")
        emit({ _tag: "Port", port: (bytes[at + 1]! << 8) | bytes[at + 2]! })
        return undefined
      case MessageId.Extended:
        if (payload < 1) return malformed("an extended message id")
        emit({ _tag: "Extended", extendedId: bytes[at + 1]!, payload: bytes.slice(at + 2, at + length) })
        return undefined
      default:
        if (!this.passUnknown) {
          return new WireError({ reason: "UnknownMessage", messageId: id, offset, length })
        }
        emit({ _tag: "Unknown", id, payload: bytes.slice(at + 1, at + length) })
        return undefined
    }
  }
}

/**
 * What `parseAll` found.
 *
 * @since 0.1.0
 * @category models
 */
export interface Parsed {
  readonly handshake: Handshake | undefined
  readonly messages: ReadonlyArray<Message>
}

/**
 * Parses a whole stream given as chunks, copying piece blocks (so they outlive the parse). For
 * tests and tools; sessions use a `FrameParser`.
 *
 * @since 0.1.0
 * @category decoders
 */
export const parseAll = (
  chunks: Iterable<Uint8Array>,
  options: Omit<ParserOptions, "blockTarget"> = {}
): Either.Either<Parsed, WireError> => {
  let handshake: Handshake | undefined
  const messages: Array<Message> = []
  const parser = new FrameParser(
    {
      onHandshake: (h) => {
        handshake = h
      },
      onMessage: (m) => {
        messages.push(m._tag === "Piece" ? { ...m, block: m.block.slice() } : m)
      }
    },
    options
  )
  for (const chunk of chunks) {
    const error = parser.feed(chunk)
    if (error !== undefined) return Either.left(error)
  }
  return Either.right({ handshake, messages })
}
