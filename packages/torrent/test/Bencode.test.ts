import { describe, expect, it } from "@effect/vitest"
import { Either, FastCheck as fc } from "effect"
import { Bencode } from "@ezio/torrent"

const bytes = (s: string) => new TextEncoder().encode(s)
const decode = (s: string | Uint8Array, options?: Bencode.DecodeOptions) =>
  Bencode.decode(typeof s === "string" ? bytes(s) : s, options)
const failure = (s: string | Uint8Array, options?: Bencode.DecodeOptions) => {
  const result = decode(s, options)
  if (Either.isRight(result)) throw new Error(`expected ${String(s)} to fail`)
  return { reason: result.left.reason, offset: result.left.offset }
}

const value: fc.Arbitrary<Bencode.Value> = fc.letrec<{ value: Bencode.Value }>((tie) => ({
  value: fc.oneof(
    { depthSize: "small", withCrossShrink: true },
    fc.maxSafeInteger(),
    fc.uint8Array({ maxLength: 40 }),
    fc.array(tie("value"), { maxLength: 5 }),
    fc
      .dictionary(
        fc.uint8Array({ maxLength: 8 }).map((b) => Buffer.from(b).toString("latin1")),
        tie("value"),
        { maxKeys: 5 }
      )
      .map((d) => Object.assign(Object.create(null), d) as Bencode.Dict)
  )
})).value

describe("Bencode", () => {
  it("decodes each kind of value", () => {
    expect(Either.getOrThrow(decode("i42e"))).toBe(42)
    expect(Either.getOrThrow(decode("i-7e"))).toBe(-7)
    expect(Either.getOrThrow(decode("i0e"))).toBe(0)
    expect(Bencode.toText(Either.getOrThrow(decode("4:spam")) as Uint8Array)).toBe("spam")
    expect(Either.getOrThrow(decode("0:"))).toEqual(new Uint8Array(0))
    const list = Either.getOrThrow(decode("l4:spami3ee")) as ReadonlyArray<Bencode.Value>
    expect(list.length).toBe(2)
    expect(list[1]).toBe(3)
    const dict = Either.getOrThrow(decode("d3:cow3:moo4:spaml1:a1:bee")) as Bencode.Dict
    expect(Object.keys(dict)).toEqual(["cow", "spam"])
  })

  it("rejects malformed input with the offset and a reason", () => {
    expect(failure("i01e")).toEqual({ reason: "LeadingZero", offset: 1 })
    expect(failure("i-0e")).toEqual({ reason: "NegativeZero", offset: 2 })
    expect(failure("ie")).toEqual({ reason: "ExpectedDigit", offset: 1 })
    expect(failure("i12")).toEqual({ reason: "UnexpectedEnd", offset: 3 })
    expect(failure("i99999999999999999e")).toEqual({ reason: "Overflow", offset: 1 })
    expect(failure("05:hello")).toEqual({ reason: "LeadingZero", offset: 0 })
    expect(failure("5:hell")).toEqual({ reason: "UnexpectedEnd", offset: 6 })
    expect(failure("5hello")).toEqual({ reason: "ExpectedColon", offset: 1 })
    expect(failure("d1:b0:1:a0:e")).toEqual({ reason: "UnsortedKeys", offset: 6 })
    expect(failure("d1:a0:1:a0:e")).toEqual({ reason: "DuplicateKey", offset: 6 })
    expect(failure("di1e0:e")).toEqual({ reason: "ExpectedDigit", offset: 1 })
    expect(failure("i1ei2e")).toEqual({ reason: "TrailingData", offset: 3 })
    expect(failure("x")).toEqual({ reason: "ExpectedValue", offset: 0 })
    expect(failure("")).toEqual({ reason: "UnexpectedEnd", offset: 0 })
    expect(failure("l".repeat(101) + "e".repeat(101))).toEqual({ reason: "DepthExceeded", offset: 100 })
    expect(failure("li1ei2ei3ee", { maxItems: 3 })).toEqual({ reason: "ItemLimitExceeded", offset: 7 })
    expect(failure("4:spam", { maxBytes: 4 }).reason).toBe("SizeLimitExceeded")
  })

  it("accepts unsorted keys only when asked, and says so in the message", () => {
    const result = decode("d1:b0:1:a0:e", { allowUnsortedKeys: true })
    expect(Either.isRight(result)).toBe(true)
    const error = Either.getLeft(decode("d1:b0:1:a0:e"))
    expect(error._tag === "Some" && error.value.message).toBe(
      "invalid bencode at byte 6: dictionary keys are not sorted"
    )
  })

  it("records the exact byte span of each top-level value", () => {
    const input = bytes("d8:announce3:url4:infod4:name1:xee")
    const decoded = Either.getOrThrow(Bencode.decodeDict(input))
    const [start, end] = decoded.spans.get("info")!
    expect(Buffer.from(input.subarray(start, end)).toString()).toBe("d4:name1:xe")
  })

  it("decodes a prefix and says where it ends", () => {
    const decoded = Either.getOrThrow(Bencode.decodePrefix(bytes("d1:ai1eeRAW")))
    expect(decoded.end).toBe(8)
  })

  it("encodes with keys in byte order and refuses non-values", () => {
    const encoded = Bencode.encode({ zeta: 1, alpha: [bytes("x"), -3], "\u00ff": 0 })
    expect(Buffer.from(encoded).toString("latin1")).toBe("d5:alphal1:xi-3ee4:zetai1e1:\u00ffi0ee")
    expect(() => Bencode.encode(1.5)).toThrow(Bencode.EncodeError)
    expect(() => Bencode.encode("s" as unknown as Bencode.Value)).toThrow(Bencode.EncodeError)
  })

  it.prop("decode(encode(x)) = x and encode is canonical", [value], ([v]) => {
    const encoded = Bencode.encode(v)
    const decoded = Either.getOrThrow(Bencode.decode(encoded))
    expect(decoded).toEqual(v)
    expect(Bencode.encode(decoded)).toEqual(encoded)
  })

  // Fuzz: mutated valid encodings and random bytes never throw, hang or decode to a value that
  // re-encodes differently. EZIO_FUZZ_RUNS raises the count on demand.
  const runs = Number(process.env.EZIO_FUZZ_RUNS ?? 2000)
  it.prop(
    "never throws on mutated or random input",
    [
      fc.oneof(
        fc.uint8Array({ maxLength: 64 }),
        fc
          .tuple(value, fc.array(fc.tuple(fc.nat(), fc.integer({ min: 0, max: 255 })), { maxLength: 4 }))
          .map(([v, edits]) => {
            const b = Bencode.encode(v).slice()
            for (const [at, byte] of edits) if (b.length > 0) b[at % b.length] = byte
            return b
          })
      )
    ],
    ([input]) => {
      const result = Bencode.decode(input)
      if (Either.isRight(result)) expect(Bencode.encode(result.right)).toEqual(input)
      else expect(result.left.offset).toBeGreaterThanOrEqual(0)
    },
    { fastCheck: { numRuns: runs } }
  )
})
