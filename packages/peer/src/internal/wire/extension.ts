/**
 * The BEP 10 extension protocol's handshake (extended message 0): which extensions the sender
 * speaks and under which ids, plus its client name, request queue, port and our address.
 */
import * as Either from "effect/Either"
import { Bencode } from "@ezio/torrent"
import { WireError } from "./error.js"
import { encodeExtended, MessageId } from "./message.js"

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
  /**
   * ezio's own key: the sender is ezio and follows its piece flow (a refused request is fetched
   * from another peer, suggested pieces come first). The value is the flow's version, now 1.
   */
  readonly ezio?: number
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
  if (handshake.ezio !== undefined) dict["ezio"] = handshake.ezio
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
  const ezio = dict["ezio"]
  return Either.right({
    m,
    ...(v instanceof Uint8Array ? { v: Bencode.toText(v) } : {}),
    ...(typeof reqq === "number" ? { reqq } : {}),
    ...(typeof p === "number" ? { p } : {}),
    ...(yourip instanceof Uint8Array && (yourip.length === 4 || yourip.length === 16) ? { yourip } : {}),
    ...(typeof metadataSize === "number" ? { metadataSize } : {}),
    ...(typeof ezio === "number" ? { ezio } : {}),
    raw: dict
  })
}
