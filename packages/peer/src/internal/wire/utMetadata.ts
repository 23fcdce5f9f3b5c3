/**
 * BEP 9's `ut_metadata` messages, carried in BEP 10 extended messages: a request for one 16 KiB
 * piece of the info dictionary, the piece itself (a bencoded header, then the raw bytes), or a
 * refusal. The extension is advertised as `ut_metadata` in the extension handshake's `m`, with the
 * info dictionary's size as `metadata_size`.
 */
import * as Either from "effect/Either"
import { Bencode } from "@ezio/torrent"
import { WireError } from "./error.js"
import { encodeExtended, MessageId } from "./message.js"

/**
 * The extension's name in the extension handshake's `m`.
 *
 * @since 0.1.0
 * @category constants
 */
export const UT_METADATA = "ut_metadata"

/**
 * The size of a metadata piece; only the last one may be shorter.
 *
 * @since 0.1.0
 * @category constants
 */
export const METADATA_PIECE = 16 * 1024

/**
 * @since 0.1.0
 * @category models
 */
export type MetadataMessage =
  | { readonly _tag: "MetadataRequest"; readonly piece: number }
  | {
      readonly _tag: "MetadataData"
      readonly piece: number
      /** The whole info dictionary's size, as the sender has it. */
      readonly totalSize: number
      readonly data: Uint8Array
    }
  | { readonly _tag: "MetadataReject"; readonly piece: number }

const MSG_TYPE = { MetadataRequest: 0, MetadataData: 1, MetadataReject: 2 } as const

/**
 * How many metadata pieces an info dictionary of `size` bytes has.
 *
 * @since 0.1.0
 * @category getters
 */
export const metadataPieces = (size: number): number => Math.ceil(size / METADATA_PIECE)

/**
 * A `ut_metadata` message as a complete frame, sent under `extendedId` (the id the receiver gave
 * `ut_metadata` in its extension handshake).
 *
 * @since 0.1.0
 * @category encoders
 */
export const encodeMetadataMessage = (extendedId: number, message: MetadataMessage): Uint8Array => {
  const header: Record<string, Bencode.Value> = { msg_type: MSG_TYPE[message._tag], piece: message.piece }
  if (message._tag !== "MetadataData") return encodeExtended(extendedId, Bencode.encode(header))
  header["total_size"] = message.totalSize
  const head = Bencode.encode(header)
  const payload = new Uint8Array(head.length + message.data.length)
  payload.set(head, 0)
  payload.set(message.data, head.length)
  return encodeExtended(extendedId, payload)
}

const malformed = (payload: Uint8Array, detail: string) =>
  Either.left(
    new WireError({
      reason: "Malformed",
      messageId: MessageId.Extended,
      offset: 0,
      length: payload.length,
      detail: `ut_metadata: ${detail}`
    })
  )

/**
 * Decodes a `ut_metadata` payload (an `Extended` message under our id for it). Data bytes past
 * the header are a view into `payload`. Messages of an unknown `msg_type` are malformed (BEP 9
 * says to ignore them; the caller decides).
 *
 * @since 0.1.0
 * @category decoders
 */
export const decodeMetadataMessage = (payload: Uint8Array): Either.Either<MetadataMessage, WireError> => {
  const decoded = Bencode.decodePrefix(payload, { allowUnsortedKeys: true, maxDepth: 4, maxItems: 64 })
  if (Either.isLeft(decoded)) return malformed(payload, decoded.left.reason)
  const { end, value } = decoded.right
  if (!Bencode.isDict(value)) return malformed(payload, "the header is not a dictionary")
  const type = value["msg_type"]
  const piece = value["piece"]
  if (!Number.isSafeInteger(piece) || (piece as number) < 0) return malformed(payload, "no valid piece")
  const index = piece as number
  if (type === 0) {
    if (end !== payload.length) return malformed(payload, "bytes after a request")
    return Either.right({ _tag: "MetadataRequest", piece: index })
  }
  if (type === 2) return Either.right({ _tag: "MetadataReject", piece: index })
  if (type === 1) {
    const totalSize = value["total_size"]
    if (!Number.isSafeInteger(totalSize) || (totalSize as number) <= 0)
      return malformed(payload, "data without a valid total_size")
    return Either.right({
      _tag: "MetadataData",
      piece: index,
      totalSize: totalSize as number,
      data: payload.subarray(end)
    })
  }
  return malformed(payload, `unknown msg_type ${String(type)}`)
}
