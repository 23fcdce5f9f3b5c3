/**
 * The one error of the peer wire codec, shared by the handshake, message, extension and parser
 * modules. Re-exported from `Wire.ts`.
 */
import * as Data from "effect/Data"

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
