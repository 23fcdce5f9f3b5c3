/**
 * The BitTorrent peer wire protocol (BEP 3) with the fast extension (BEP 6) and the extension
 * protocol (BEP 10): encoders returning `Uint8Array`s, and an incremental `FrameParser` fed the
 * chunks a socket delivers. Everything here is plain JS (no Effect), for the per-block hot path.
 *
 * The code lives in `internal/wire/`, one module per concern: `handshake`, `message` (models,
 * encoders, decoding a whole frame), `parser` (the frame parser), `extension` (the BEP 10
 * handshake), `utMetadata` (BEP 9 metadata messages), `fast` (the BEP 6 allowed-fast set) and
 * `error`.
 *
 * @since 0.1.0
 */

// errors
export { type WireErrorReason, WireError } from "./internal/wire/error.js"

// the handshake
export {
  decodeHandshake,
  encodeHandshake,
  HANDSHAKE_LENGTH,
  type Handshake,
  type HandshakeInit,
  makeReserved,
  PROTOCOL,
  supportsDht,
  supportsExtensions,
  supportsFast
} from "./internal/wire/handshake.js"

// messages and their encoders
export {
  type AllowedFast,
  type Bitfield,
  type Cancel,
  type Choke,
  encode,
  encodeBitfield,
  encodeCancel,
  encodeExtended,
  encodeHave,
  encodeKeepAlive,
  encodeRejectRequest,
  encodeRequest,
  type Extended,
  type Have,
  type HaveAll,
  type HaveNone,
  type Interested,
  type KeepAlive,
  type Message,
  MessageId,
  type NotInterested,
  type Piece,
  pieceHeader,
  type Port,
  type RejectRequest,
  type Request,
  type Suggest,
  type Unchoke,
  type Unknown
} from "./internal/wire/message.js"

// the BEP 10 extension handshake
export {
  decodeExtensionHandshake,
  encodeExtensionHandshake,
  type ExtensionHandshake
} from "./internal/wire/extension.js"

// BEP 9 metadata exchange (ut_metadata)
export {
  decodeMetadataMessage,
  encodeMetadataMessage,
  METADATA_PIECE,
  type MetadataMessage,
  metadataPieces,
  UT_METADATA
} from "./internal/wire/utMetadata.js"

// the BEP 6 allowed-fast set
export { allowedFastSet } from "./internal/wire/fast.js"

// the frame parser
export {
  DEFAULT_MAX_BLOCK,
  DEFAULT_MAX_EXTENDED,
  FrameParser,
  maxMessageLength,
  type Parsed,
  parseAll,
  type ParserHandlers,
  type ParserOptions
} from "./internal/wire/parser.js"
