/**
 * The incremental frame parser: one peer's byte stream (handshake, then length-prefixed messages)
 * fed in the chunks a socket delivers. It runs for every byte received, so it is plain JS: no
 * Effect, and no allocation per frame beyond the emitted message (and the view a block is copied
 * through, see copy.ts).
 */
import * as Either from "effect/Either"
import { copyInto } from "./copy.js"
import { WireError } from "./error.js"
import { checkProtocol, HANDSHAKE_LENGTH, type Handshake, handshakeAt } from "./handshake.js"
import {
  type DecodeLimits,
  decodeMessage,
  keepAliveMessage,
  type Message,
  MessageId,
  pieceError,
  u32
} from "./message.js"

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
   * and the emitted `Piece.block` is its first `length` bytes (the target itself when that long).
   * Returning `undefined` (say the pool is exhausted, or the block was not requested) makes that
   * block a view as without this option.
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
  /**
   * Piece messages, if given: called instead of `onMessage`, so a block costs no message object
   * (one per 16 KiB received otherwise).
   */
  readonly onPiece?: (index: number, begin: number, block: Uint8Array) => void
}

/**
 * Where the parser is in the stream. Every state but `Handshake` and `Body` accumulates the
 * current frame in `pending` until it holds the state's byte count.
 */
const enum State {
  /** Accumulating the 68-byte handshake. */
  Handshake,
  /** At a frame boundary, or accumulating a 4-byte length prefix. */
  Length,
  /** Waiting for the id byte of a frame that may be a piece with a block target (5 bytes). */
  Id,
  /** Accumulating a piece message's 13-byte header, to ask for its block target. */
  PieceHeader,
  /** Accumulating a whole frame (4 + frameLength bytes); a piece in it may still get a target. */
  Frame,
  /** Accumulating a whole piece frame whose block target was refused: its block stays a view. */
  Declined,
  /** Streaming a piece's block into the target `blockTarget` returned. */
  Body
}

/** The block in its target: the target itself when it fits exactly (a pool block), no new view. */
const blockOf = (target: Uint8Array, length: number): Uint8Array =>
  target.length === length ? target : target.subarray(0, length)

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
  /** The current frame's length prefix, once read. */
  private frameLength = 0
  /** The current piece's header, block target and (in `Body`) bytes received so far. */
  private pieceIndex = 0
  private pieceBegin = 0
  private pieceLength = 0
  private pieceTarget: Uint8Array | undefined = undefined
  private pieceFilled = 0
  private readonly maxLength: number
  private readonly limits: DecodeLimits
  private readonly blockTarget: ParserOptions["blockTarget"]

  constructor(
    private readonly handlers: ParserHandlers,
    options: ParserOptions = {}
  ) {
    this.state = options.handshake === false ? State.Length : State.Handshake
    this.maxLength = maxMessageLength(options)
    this.limits = {
      pieces: options.pieces,
      maxBlock: options.maxBlockLength ?? DEFAULT_MAX_BLOCK,
      passUnknown: options.unknownMessages !== "error"
    }
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
    return this.state === State.Body ? 13 + this.pieceFilled : this.pendingLength
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
      if (this.state === State.Body) {
        const target = this.pieceTarget!
        const take = Math.min(this.pieceLength - this.pieceFilled, n - pos)
        copyInto(target, chunk.subarray(pos, pos + take), this.pieceFilled)
        this.pieceFilled += take
        pos += take
        if (this.pieceFilled === this.pieceLength) {
          this.state = State.Length
          this.pieceTarget = undefined
          this.emitPiece(blockOf(target, this.pieceLength))
        }
        continue
      }
      if (this.state === State.Length && this.pendingLength === 0 && n - pos >= 4) {
        // fast path: the frame's header is in this chunk, so decode in place
        const frameStart = this.streamOffset + pos
        const length = u32(chunk, pos)
        if (length > this.maxLength) return this.fail(this.oversized(chunk[pos + 4], frameStart, length))
        if (n - pos >= 4 + length) {
          const error = this.dispatch(chunk, pos + 4, length, frameStart, true)
          if (error !== undefined) return this.fail(error)
          pos += 4 + length
          continue
        }
        if (
          this.blockTarget !== undefined &&
          length > 9 &&
          n - pos >= 13 &&
          chunk[pos + 4] === MessageId.Piece
        ) {
          const error = this.startPiece(chunk, pos + 4, length, frameStart)
          if (error !== undefined) return this.fail(error)
          if (this.inBody()) {
            pos += 13
            continue
          }
          // declined: `startPiece` moved to Declined, and the frame is accumulated below
        }
      }
      // slow path: accumulate the bytes the current state needs in `pending`
      const want = this.wanted()
      const take = Math.min(want - this.pendingLength, n - pos)
      this.pending.set(chunk.subarray(pos, pos + take), this.pendingLength)
      this.pendingLength += take
      pos += take
      if (this.state === State.Handshake) {
        // refuse a wrong protocol string as soon as its bytes arrive
        const error = checkProtocol(this.pending, 0, this.pendingLength, 0)
        if (error !== undefined) return this.fail(error)
      }
      if (this.pendingLength < want) continue
      const error = this.complete(this.streamOffset + pos - this.pendingLength)
      if (error !== undefined) return this.fail(error)
    }
    this.streamOffset += n
    return undefined
  }

  /** How many bytes of the current frame (or handshake) the current state accumulates. */
  private wanted(): number {
    switch (this.state) {
      case State.Handshake:
        return HANDSHAKE_LENGTH
      case State.Length:
        return 4
      case State.Id:
        return 5
      case State.PieceHeader:
        return 13
      default:
        return 4 + this.frameLength
    }
  }

  /** `pending` holds all the bytes the current state waited for (a frame starting at `start`). */
  private complete(start: number): WireError | undefined {
    switch (this.state) {
      case State.Handshake: {
        const handshake = handshakeAt(this.pending, 0)
        this.pendingLength = 0
        this.state = State.Length
        this.handlers.onHandshake?.(handshake)
        return undefined
      }
      case State.Length: {
        const length = u32(this.pending, 0)
        if (length > this.maxLength) return this.oversized(undefined, start, length)
        if (length === 0) {
          this.pendingLength = 0
          this.handlers.onMessage(keepAliveMessage)
          return undefined
        }
        this.expectFrame(length, this.blockTarget !== undefined && length > 9 ? State.Id : State.Frame)
        return undefined
      }
      case State.Id:
        this.state = this.pending[4] === MessageId.Piece ? State.PieceHeader : State.Frame
        return undefined
      case State.PieceHeader: {
        const error = this.startPiece(this.pending, 4, this.frameLength, start)
        if (error === undefined && this.inBody()) this.pendingLength = 0
        return error
      }
      case State.Frame:
      case State.Declined: {
        const mayTarget = this.state === State.Frame
        this.pendingLength = 0
        this.state = State.Length
        return this.dispatch(this.pending, 4, this.frameLength, start, mayTarget)
      }
      case State.Body:
        return undefined
    }
  }

  /** The current piece message, its block complete. */
  private emitPiece(block: Uint8Array): void {
    const onPiece = this.handlers.onPiece
    if (onPiece !== undefined) onPiece(this.pieceIndex, this.pieceBegin, block)
    else this.handlers.onMessage({ _tag: "Piece", index: this.pieceIndex, begin: this.pieceBegin, block })
  }

  /** After `startPiece`, which moves to Body or Declined (a method, so TS does not narrow `state`). */
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

  /** The frame has a `length` prefix: grow `pending` to hold it whole, then go to `next`. */
  private expectFrame(length: number, next: State): void {
    this.frameLength = length
    if (this.pending.length < 4 + length) {
      const grown = new Uint8Array(Math.max(4 + length, this.pending.length * 2))
      grown.set(this.pending.subarray(0, this.pendingLength))
      this.pending = grown
    }
    this.state = next
  }

  /**
   * Checks the piece message whose id byte is at `at` in `bytes`, reads its header and asks
   * `blockTarget` for a buffer; `pieceTarget` is that buffer or `undefined` if refused.
   */
  private readPiece(bytes: Uint8Array, at: number, length: number, offset: number): WireError | undefined {
    const error = pieceError(length, offset, this.limits.maxBlock)
    if (error !== undefined) return error
    const index = u32(bytes, at + 1)
    const begin = u32(bytes, at + 5)
    const blockLength = length - 9
    const target = this.blockTarget!(index, begin, blockLength)
    this.pieceIndex = index
    this.pieceBegin = begin
    this.pieceLength = blockLength
    this.pieceTarget = target !== undefined && target.length >= blockLength ? target : undefined
    return undefined
  }

  /** A piece's header is in (its block is not): stream the block into its target, or buffer the frame. */
  private startPiece(bytes: Uint8Array, at: number, length: number, offset: number): WireError | undefined {
    const error = this.readPiece(bytes, at, length, offset)
    if (error !== undefined) return error
    if (this.pieceTarget === undefined) {
      this.expectFrame(length, State.Declined)
    } else {
      this.pieceFilled = 0
      this.state = State.Body
    }
    return undefined
  }

  /** Decodes the whole frame whose id byte is at `at` and emits it. */
  private dispatch(
    bytes: Uint8Array,
    at: number,
    length: number,
    offset: number,
    mayTarget: boolean
  ): WireError | undefined {
    if (mayTarget && this.blockTarget !== undefined && length !== 0 && bytes[at] === MessageId.Piece) {
      const error = this.readPiece(bytes, at, length, offset)
      if (error !== undefined) return error
      const view = bytes.subarray(at + 9, at + length)
      const target = this.pieceTarget
      this.pieceTarget = undefined
      if (target !== undefined) copyInto(target, view)
      this.emitPiece(target === undefined ? view : blockOf(target, this.pieceLength))
      return undefined
    }
    const message = decodeMessage(bytes, at, length, offset, this.limits)
    if (message._tag === "WireError") return message
    const onPiece = this.handlers.onPiece
    if (message._tag === "Piece" && onPiece !== undefined)
      onPiece(message.index, message.begin, message.block)
    else this.handlers.onMessage(message)
    return undefined
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
