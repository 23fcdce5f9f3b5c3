/**
 * Bencode, strict and bounded like libtorrent's `bdecode`: leading zeros, negative zero, unsorted
 * or duplicate dictionary keys, trailing bytes and inputs past a depth, item or size limit are
 * rejected with the byte offset and a reason. Pure functions, no I/O.
 *
 * Byte strings decode to `Uint8Array` views into the input (no copies: a torrent's `pieces` can be
 * tens of MiB); copy them if the input buffer is reused. Dictionary keys are `latin1` strings of
 * the key's raw bytes, so any key round-trips byte for byte and sorts in byte order.
 *
 * @since 0.1.0
 */
import * as Data from "effect/Data"
import * as Either from "effect/Either"

/**
 * @since 0.1.0
 * @category models
 */
export type Value = number | Uint8Array | ReadonlyArray<Value> | Dict

/**
 * Keys are the raw key bytes as a `latin1` string (ASCII keys read as themselves).
 *
 * @since 0.1.0
 * @category models
 */
export interface Dict {
  readonly [key: string]: Value
}

/**
 * @since 0.1.0
 * @category errors
 */
export type Reason =
  | "UnexpectedEnd"
  | "ExpectedValue"
  | "ExpectedDigit"
  | "ExpectedColon"
  | "LeadingZero"
  | "NegativeZero"
  | "Overflow"
  | "UnsortedKeys"
  | "DuplicateKey"
  | "TrailingData"
  | "DepthExceeded"
  | "ItemLimitExceeded"
  | "SizeLimitExceeded"

const reasonText: Record<Reason, string> = {
  UnexpectedEnd: "the input ends in the middle of a value",
  ExpectedValue: "expected a value (i, l, d or a digit)",
  ExpectedDigit: "expected a digit",
  ExpectedColon: "expected ':' after a string length",
  LeadingZero: "a number has a leading zero",
  NegativeZero: "negative zero is not a valid integer",
  Overflow: "an integer or length is too large",
  UnsortedKeys: "dictionary keys are not sorted",
  DuplicateKey: "a dictionary key appears twice",
  TrailingData: "bytes follow the end of the value",
  DepthExceeded: "nesting is too deep",
  ItemLimitExceeded: "too many items",
  SizeLimitExceeded: "the input is too large"
}

/**
 * @since 0.1.0
 * @category errors
 */
export class BencodeError extends Data.TaggedError("BencodeError")<{
  readonly reason: Reason
  /** Byte offset in the input where decoding stopped. */
  readonly offset: number
}> {
  override get message(): string {
    return `invalid bencode at byte ${this.offset}: ${reasonText[this.reason]}`
  }
}

/**
 * @since 0.1.0
 * @category models
 */
export interface DecodeOptions {
  /** Deepest nesting of lists and dictionaries. Default 100 (libtorrent's). */
  readonly maxDepth?: number
  /** Most values (integers, strings, lists, dictionaries) in one input. Default 3,000,000. */
  readonly maxItems?: number
  /** Largest input in bytes. Default 64 MiB. */
  readonly maxBytes?: number
  /** Accept unsorted and duplicate keys (the last one wins) instead of failing. Default false. */
  readonly allowUnsortedKeys?: boolean
}

/**
 * A decoded top-level dictionary with the exact byte range of each of its values, so a caller
 * can hash the original bytes of `info` rather than a re-encoding.
 *
 * @since 0.1.0
 * @category models
 */
export interface DecodedDict {
  readonly value: Dict
  readonly spans: ReadonlyMap<string, readonly [start: number, end: number]>
}

class Failure {
  constructor(
    readonly reason: Reason,
    readonly offset: number
  ) {}
}

const D0 = 0x30
const D9 = 0x39
const COLON = 0x3a
const MINUS = 0x2d
const E = 0x65
const I = 0x69
const L = 0x6c
const DICT = 0x64

class Decoder {
  position = 0
  items = 0
  topSpans: Map<string, readonly [number, number]> | undefined = undefined
  constructor(
    readonly bytes: Uint8Array,
    readonly maxDepth: number,
    readonly maxItems: number,
    readonly allowUnsorted: boolean
  ) {}

  fail(reason: Reason, offset = this.position): never {
    throw new Failure(reason, offset)
  }

  value(depth: number): Value {
    const bytes = this.bytes
    if (this.position >= bytes.length) this.fail("UnexpectedEnd")
    if (++this.items > this.maxItems) this.fail("ItemLimitExceeded")
    const c = bytes[this.position]!
    if (c === I) return this.integer()
    if (c >= D0 && c <= D9) return this.string()
    if (c === L) {
      if (depth >= this.maxDepth) this.fail("DepthExceeded")
      this.position++
      const list: Array<Value> = []
      for (;;) {
        if (this.position >= bytes.length) this.fail("UnexpectedEnd")
        if (bytes[this.position] === E) {
          this.position++
          return list
        }
        list.push(this.value(depth + 1))
      }
    }
    if (c === DICT) {
      if (depth >= this.maxDepth) this.fail("DepthExceeded")
      const spans = depth === 0 && this.topSpans !== undefined ? this.topSpans : undefined
      this.position++
      const dict: Record<string, Value> = Object.create(null)
      let previous: string | undefined
      for (;;) {
        if (this.position >= bytes.length) this.fail("UnexpectedEnd")
        if (bytes[this.position] === E) {
          this.position++
          return dict
        }
        const keyStart = this.position
        const c0 = bytes[this.position]!
        if (c0 < D0 || c0 > D9) this.fail("ExpectedDigit")
        if (++this.items > this.maxItems) this.fail("ItemLimitExceeded")
        const key = latin1(this.string())
        if (previous !== undefined && key <= previous) {
          if (!this.allowUnsorted) this.fail(key === previous ? "DuplicateKey" : "UnsortedKeys", keyStart)
        }
        previous = key
        const start = this.position
        dict[key] = this.value(depth + 1)
        spans?.set(key, [start, this.position])
      }
    }
    return this.fail("ExpectedValue")
  }

  integer(): number {
    const bytes = this.bytes
    let p = this.position + 1
    let negative = false
    if (bytes[p] === MINUS) {
      negative = true
      p++
    }
    const first = p
    let n = 0
    while (p < bytes.length && bytes[p]! >= D0 && bytes[p]! <= D9) {
      n = n * 10 + (bytes[p]! - D0)
      p++
    }
    if (p >= bytes.length) this.fail("UnexpectedEnd", p)
    if (p === first || bytes[p] !== E) this.fail("ExpectedDigit", p)
    if (bytes[first] === D0 && p - first > 1) this.fail("LeadingZero", first)
    if (negative && n === 0) this.fail("NegativeZero", first)
    if (p - first > 16 || !Number.isSafeInteger(n)) this.fail("Overflow", first)
    this.position = p + 1
    return negative ? -n : n
  }

  string(): Uint8Array {
    const bytes = this.bytes
    const first = this.position
    let p = first
    let n = 0
    while (p < bytes.length && bytes[p]! >= D0 && bytes[p]! <= D9) {
      n = n * 10 + (bytes[p]! - D0)
      p++
    }
    if (p >= bytes.length) this.fail("UnexpectedEnd", p)
    if (bytes[p] !== COLON) this.fail("ExpectedColon", p)
    if (bytes[first] === D0 && p - first > 1) this.fail("LeadingZero", first)
    if (p - first > 15) this.fail("Overflow", first)
    const start = p + 1
    if (start + n > bytes.length) this.fail("UnexpectedEnd", bytes.length)
    this.position = start + n
    return bytes.subarray(start, start + n)
  }
}

const latin1 = (bytes: Uint8Array): string => {
  // Keys are short; String.fromCharCode over the bytes is the latin1 reading.
  let out = ""
  for (let i = 0; i < bytes.length; i++) out += String.fromCharCode(bytes[i]!)
  return out
}

const run = <A>(bytes: Uint8Array, options: DecodeOptions, body: (decoder: Decoder) => A) => {
  const maxBytes = options.maxBytes ?? 64 * 1024 * 1024
  if (bytes.length > maxBytes)
    return Either.left(new BencodeError({ reason: "SizeLimitExceeded", offset: maxBytes }))
  const decoder = new Decoder(
    bytes,
    options.maxDepth ?? 100,
    options.maxItems ?? 3_000_000,
    options.allowUnsortedKeys ?? false
  )
  try {
    const result = body(decoder)
    if (decoder.position !== bytes.length)
      return Either.left(new BencodeError({ reason: "TrailingData", offset: decoder.position }))
    return Either.right(result)
  } catch (error) {
    if (error instanceof Failure)
      return Either.left(new BencodeError({ reason: error.reason, offset: error.offset }))
    // A stack overflow cannot happen below maxDepth 100, but keep any surprise typed.
    if (error instanceof RangeError)
      return Either.left(new BencodeError({ reason: "DepthExceeded", offset: decoder.position }))
    throw error
  }
}

/**
 * Decodes exactly one value that spans the whole input.
 *
 * @since 0.1.0
 * @category decoding
 */
export const decode = (bytes: Uint8Array, options: DecodeOptions = {}): Either.Either<Value, BencodeError> =>
  run(bytes, options, (decoder) => decoder.value(0))

/**
 * Decodes a top-level dictionary and records the byte range of each of its values (the info
 * dictionary of a .torrent, whose SHA-1 is the info-hash).
 *
 * @since 0.1.0
 * @category decoding
 */
export const decodeDict = (
  bytes: Uint8Array,
  options: DecodeOptions = {}
): Either.Either<DecodedDict, BencodeError> =>
  run(bytes, options, (decoder) => {
    if (bytes[0] !== DICT) decoder.fail(bytes.length === 0 ? "UnexpectedEnd" : "ExpectedValue", 0)
    const spans = new Map<string, readonly [number, number]>()
    decoder.topSpans = spans
    return { value: decoder.value(0) as Dict, spans }
  })

/**
 * Decodes one value at the start of `bytes` and says where it ends (for streams such as the
 * BEP 9 metadata message, where raw bytes follow a dictionary).
 *
 * @since 0.1.0
 * @category decoding
 */
export const decodePrefix = (
  bytes: Uint8Array,
  options: DecodeOptions = {}
): Either.Either<{ readonly value: Value; readonly end: number }, BencodeError> => {
  let end = 0
  const result = run(bytes, options, (decoder) => {
    const value = decoder.value(0)
    end = decoder.position
    decoder.position = bytes.length
    return value
  })
  return Either.map(result, (value) => ({ value, end }))
}

const encoder = new TextEncoder()
const strictDecoder = new TextDecoder("utf-8", { fatal: true })
const lenientDecoder = new TextDecoder("utf-8")

/**
 * UTF-8 bytes of a string, for byte-string values.
 *
 * @since 0.1.0
 * @category text
 */
export const text = (value: string): Uint8Array => encoder.encode(value)

/**
 * A byte string read as UTF-8 (invalid sequences become U+FFFD).
 *
 * @since 0.1.0
 * @category text
 */
export const toText = (value: Uint8Array): string => lenientDecoder.decode(value)

/**
 * A byte string read as UTF-8, or `undefined` if it is not valid UTF-8.
 *
 * @since 0.1.0
 * @category text
 */
export const toTextStrict = (value: Uint8Array): string | undefined => {
  try {
    return strictDecoder.decode(value)
  } catch {
    return undefined
  }
}

/**
 * The dictionary key for a UTF-8 string (keys are latin1 strings of their raw bytes).
 *
 * @since 0.1.0
 * @category text
 */
export const key = (value: string): string => latin1(encoder.encode(value))

/**
 * The UTF-8 reading of a dictionary key.
 *
 * @since 0.1.0
 * @category text
 */
export const keyText = (value: string): string => toText(Buffer.from(value, "latin1"))

/**
 * @since 0.1.0
 * @category guards
 */
export const isBytes = (value: Value | undefined): value is Uint8Array => value instanceof Uint8Array

/**
 * @since 0.1.0
 * @category guards
 */
export const isInteger = (value: Value | undefined): value is number => typeof value === "number"

/**
 * @since 0.1.0
 * @category guards
 */
export const isList = (value: Value | undefined): value is ReadonlyArray<Value> => Array.isArray(value)

/**
 * @since 0.1.0
 * @category guards
 */
export const isDict = (value: Value | undefined): value is Dict =>
  typeof value === "object" && value !== null && !Array.isArray(value) && !(value instanceof Uint8Array)

/**
 * Thrown (a defect) when asked to encode something that is not a bencode value: a non-integer or
 * unsafe number, `undefined`, a string.
 *
 * @since 0.1.0
 * @category errors
 */
export class EncodeError extends Data.TaggedError("BencodeEncodeError")<{ readonly reason: string }> {
  override get message(): string {
    return `cannot bencode: ${this.reason}`
  }
}

const sortedKeys = (dict: Dict): Array<string> => {
  const keys = Object.keys(dict).filter((k) => dict[k] !== undefined)
  // Byte order: latin1 strings compare by code unit, which is the byte.
  return keys.sort((a, b) => (a < b ? -1 : a > b ? 1 : 0))
}

const size = (value: Value): number => {
  if (typeof value === "number") {
    if (!Number.isSafeInteger(value)) throw new EncodeError({ reason: `${value} is not a safe integer` })
    return String(value).length + 2
  }
  if (value instanceof Uint8Array) return String(value.length).length + 1 + value.length
  if (Array.isArray(value)) {
    let n = 2
    for (const item of value as ReadonlyArray<Value>) n += size(item)
    return n
  }
  if (isDict(value)) {
    let n = 2
    for (const k of sortedKeys(value)) n += String(k.length).length + 1 + k.length + size(value[k]!)
    return n
  }
  throw new EncodeError({ reason: `${typeof value} is not a bencode value` })
}

const writeAscii = (out: Uint8Array, position: number, s: string): number => {
  for (let i = 0; i < s.length; i++) out[position + i] = s.charCodeAt(i)
  return position + s.length
}

const write = (out: Uint8Array, position: number, value: Value): number => {
  if (typeof value === "number") return writeAscii(out, position, `i${value}e`)
  if (value instanceof Uint8Array) {
    position = writeAscii(out, position, `${value.length}:`)
    out.set(value, position)
    return position + value.length
  }
  if (Array.isArray(value)) {
    out[position++] = L
    for (const item of value as ReadonlyArray<Value>) position = write(out, position, item)
    out[position++] = E
    return position
  }
  const dict = value as Dict
  out[position++] = DICT
  for (const k of sortedKeys(dict)) {
    position = writeAscii(out, position, `${k.length}:`)
    position = writeAscii(out, position, k)
    position = write(out, position, dict[k]!)
  }
  out[position++] = E
  return position
}

/**
 * Encodes a value, with dictionary keys in byte order. Throws `EncodeError` (a defect: the
 * caller built an invalid value) for non-integer numbers and non-bencode values.
 *
 * @since 0.1.0
 * @category encoding
 */
export const encode = (value: Value): Uint8Array => {
  const out = new Uint8Array(size(value))
  write(out, 0, value)
  return out
}
