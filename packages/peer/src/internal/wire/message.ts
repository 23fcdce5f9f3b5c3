/**
 * The messages after the handshake (BEP 3, BEP 6 fast extension, the BEP 10 envelope): their
 * models, their encoders, and `decodeMessage` for a frame that is whole in memory.
 */
import { WireError } from "./error.js"

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

/** The one keep-alive message (it carries nothing). */
export const keepAliveMessage: KeepAlive = Object.freeze({ _tag: "KeepAlive" })
const chokeMessage: Choke = Object.freeze({ _tag: "Choke" })
const unchokeMessage: Unchoke = Object.freeze({ _tag: "Unchoke" })
const interestedMessage: Interested = Object.freeze({ _tag: "Interested" })
const notInterestedMessage: NotInterested = Object.freeze({ _tag: "NotInterested" })
const haveAllMessage: HaveAll = Object.freeze({ _tag: "HaveAll" })
const haveNoneMessage: HaveNone = Object.freeze({ _tag: "HaveNone" })

// ---------------------------------------------------------------------------------------------
// encoders
// ---------------------------------------------------------------------------------------------

/** The big-endian u32 at `at`. */
export const u32 = (b: Uint8Array, at: number): number =>
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
// decoding a whole frame
// ---------------------------------------------------------------------------------------------

/** What decoding checks a frame against; a parser builds it once. */
export interface DecodeLimits {
  /** The torrent's piece count, if known: bitfields must be exactly its byte length. */
  readonly pieces: number | undefined
  /** Largest block a piece message may carry. */
  readonly maxBlock: number
  /** Unknown ids become `Unknown` messages (else an `"UnknownMessage"` error). */
  readonly passUnknown: boolean
}

const malformed = (id: number, offset: number, length: number, expected: string): WireError =>
  new WireError({ reason: "Malformed", messageId: id, offset, length, detail: `expected ${expected}` })

/**
 * Why a piece message with this length prefix is refused, if it is: too short for its header, or
 * a block above `maxBlock`. Streamed and whole pieces both go through here.
 */
export const pieceError = (length: number, offset: number, maxBlock: number): WireError | undefined => {
  if (length < 9) return malformed(MessageId.Piece, offset, length, "at least 8 payload bytes")
  if (length - 9 > maxBlock) {
    return new WireError({
      reason: "Oversized",
      messageId: MessageId.Piece,
      offset,
      length: length - 9,
      limit: maxBlock,
      detail: "piece block"
    })
  }
  return undefined
}

/**
 * Decodes the frame whose id byte is at `at` in `bytes` (`length` is its length prefix, `offset`
 * where it starts in the peer's stream). A piece's block is a view of `bytes`; byte-array payloads
 * of the other messages are copies. Allocates nothing but the message (fixed messages are shared).
 */
export const decodeMessage = (
  bytes: Uint8Array,
  at: number,
  length: number,
  offset: number,
  limits: DecodeLimits
): Message | WireError => {
  if (length === 0) return keepAliveMessage
  const id = bytes[at]!
  const payload = length - 1
  switch (id) {
    case MessageId.Choke:
    case MessageId.Unchoke:
    case MessageId.Interested:
    case MessageId.NotInterested:
    case MessageId.HaveAll:
    case MessageId.HaveNone:
      if (payload !== 0) return malformed(id, offset, length, "no payload")
      return id === MessageId.Choke
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
    case MessageId.Have:
    case MessageId.Suggest:
    case MessageId.AllowedFast: {
      if (payload !== 4) return malformed(id, offset, length, "a 4-byte payload")
      const index = u32(bytes, at + 1)
      return id === MessageId.Have
        ? { _tag: "Have", index }
        : id === MessageId.Suggest
          ? { _tag: "Suggest", index }
          : { _tag: "AllowedFast", index }
    }
    case MessageId.Request:
    case MessageId.Cancel:
    case MessageId.RejectRequest: {
      if (payload !== 12) return malformed(id, offset, length, "a 12-byte payload")
      return {
        _tag: id === MessageId.Request ? "Request" : id === MessageId.Cancel ? "Cancel" : "RejectRequest",
        index: u32(bytes, at + 1),
        begin: u32(bytes, at + 5),
        length: u32(bytes, at + 9)
      }
    }
    case MessageId.Bitfield: {
      const pieces = limits.pieces
      if (pieces !== undefined && payload !== Math.ceil(pieces / 8)) {
        return malformed(id, offset, length, `a ${Math.ceil(pieces / 8)}-byte bitfield for ${pieces} pieces`)
      }
      return { _tag: "Bitfield", bits: bytes.slice(at + 1, at + length) }
    }
    case MessageId.Piece: {
      const error = pieceError(length, offset, limits.maxBlock)
      if (error !== undefined) return error
      return {
        _tag: "Piece",
        index: u32(bytes, at + 1),
        begin: u32(bytes, at + 5),
        block: bytes.subarray(at + 9, at + length)
      }
    }
    case MessageId.Port:
      if (payload !== 2) return malformed(id, offset, length, "a 2-byte payload")
      return { _tag: "Port", port: (bytes[at + 1]! << 8) | bytes[at + 2]! }
    case MessageId.Extended:
      if (payload < 1) return malformed(id, offset, length, "an extended message id")
      return { _tag: "Extended", extendedId: bytes[at + 1]!, payload: bytes.slice(at + 2, at + length) }
    default:
      if (!limits.passUnknown)
        return new WireError({ reason: "UnknownMessage", messageId: id, offset, length })
      return { _tag: "Unknown", id, payload: bytes.slice(at + 1, at + length) }
  }
}
