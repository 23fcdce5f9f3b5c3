import { assert, describe, it } from "@effect/vitest"
import { Either, FastCheck } from "effect"
import * as Session from "../src/Session.js"
import * as Wire from "../src/Wire.js"

const u32 = FastCheck.integer({ min: 0, max: 0xffffffff })
const bytes20 = FastCheck.uint8Array({ minLength: 20, maxLength: 20 })

const knownIds = new Set<number>(Object.values(Wire.MessageId))
const unknownId = FastCheck.integer({ min: 0, max: 255 }).filter((id) => !knownIds.has(id))

const message: FastCheck.Arbitrary<Wire.Message> = FastCheck.oneof(
  FastCheck.constantFrom<Wire.Message>(
    { _tag: "KeepAlive" },
    { _tag: "Choke" },
    { _tag: "Unchoke" },
    { _tag: "Interested" },
    { _tag: "NotInterested" },
    { _tag: "HaveAll" },
    { _tag: "HaveNone" }
  ),
  FastCheck.record({
    _tag: FastCheck.constantFrom("Have", "Suggest", "AllowedFast"),
    index: u32
  }) as FastCheck.Arbitrary<Wire.Message>,
  FastCheck.record({
    _tag: FastCheck.constantFrom("Request", "Cancel", "RejectRequest"),
    index: u32,
    begin: u32,
    length: u32
  }) as FastCheck.Arbitrary<Wire.Message>,
  FastCheck.record({
    _tag: FastCheck.constant("Bitfield" as const),
    bits: FastCheck.uint8Array({ maxLength: 200 })
  }),
  FastCheck.record({
    _tag: FastCheck.constant("Piece" as const),
    index: u32,
    begin: u32,
    block: FastCheck.oneof(
      { weight: 4, arbitrary: FastCheck.uint8Array({ maxLength: 64 }) },
      { weight: 1, arbitrary: FastCheck.uint8Array({ minLength: 16384, maxLength: 16384 }) }
    )
  }),
  FastCheck.record({
    _tag: FastCheck.constant("Port" as const),
    port: FastCheck.integer({ min: 0, max: 65535 })
  }),
  FastCheck.record({
    _tag: FastCheck.constant("Extended" as const),
    extendedId: FastCheck.integer({ min: 0, max: 255 }),
    payload: FastCheck.uint8Array({ maxLength: 100 })
  }),
  FastCheck.record({
    _tag: FastCheck.constant("Unknown" as const),
    id: unknownId,
    payload: FastCheck.uint8Array({ maxLength: 40 })
  })
)

/** Comparable form: byte arrays as hex. */
const normalize = (value: unknown): unknown => {
  if (value instanceof Uint8Array) return Buffer.from(value).toString("hex")
  if (Array.isArray(value)) return value.map(normalize)
  if (typeof value === "object" && value !== null) {
    return Object.fromEntries(Object.entries(value).map(([k, v]) => [k, normalize(v)]))
  }
  return value
}

const concat = (parts: ReadonlyArray<Uint8Array>): Uint8Array => {
  const out = new Uint8Array(parts.reduce((n, p) => n + p.length, 0))
  let at = 0
  for (const p of parts) {
    out.set(p, at)
    at += p.length
  }
  return out
}

/** Splits `bytes` into chunks of the given sizes, cycling (a size 0 list means one chunk). */
const chunk = (bytes: Uint8Array, sizes: ReadonlyArray<number>): Array<Uint8Array> => {
  if (sizes.length === 0) return [bytes]
  const out: Array<Uint8Array> = []
  let at = 0
  let i = 0
  while (at < bytes.length) {
    const size = sizes[i++ % sizes.length]!
    out.push(bytes.subarray(at, at + size))
    at += size
  }
  return out
}

const chunkSizes = FastCheck.array(
  FastCheck.oneof(FastCheck.integer({ min: 1, max: 8 }), FastCheck.integer({ min: 1, max: 20000 })),
  { maxLength: 12 }
)

const handshakeInit = FastCheck.record({
  infoHash: bytes20,
  peerId: bytes20,
  fast: FastCheck.boolean(),
  extensions: FastCheck.boolean(),
  dht: FastCheck.boolean()
})

/**
 * Runs a parser in zero-copy mode, copying blocks inside the callback as the contract asks;
 * `onBlock` sees each piece's block as the parser emitted it.
 */
const parseViews = (
  chunks: ReadonlyArray<Uint8Array>,
  { onBlock, ...options }: Wire.ParserOptions & { readonly onBlock?: (block: Uint8Array) => void } = {}
) => {
  const messages: Array<Wire.Message> = []
  let handshake: Wire.Handshake | undefined
  const parser = new Wire.FrameParser(
    {
      onHandshake: (h) => (handshake = h),
      onMessage: (m) => {
        if (m._tag === "Piece") onBlock?.(m.block)
        messages.push(m._tag === "Piece" ? { ...m, block: m.block.slice() } : m)
      }
    },
    options
  )
  for (const c of chunks) {
    const error = parser.feed(c)
    if (error !== undefined) return { error, messages, handshake }
  }
  return { error: undefined, messages, handshake, buffered: parser.buffered }
}

describe("Wire", () => {
  it.prop(
    "handshake + messages survive any chunking (parseAll, zero-copy views and block targets)",
    { init: handshakeInit, messages: FastCheck.array(message, { maxLength: 25 }), sizes: chunkSizes },
    ({ init, messages, sizes }) => {
      const stream = concat([Wire.encodeHandshake(init), ...messages.map(Wire.encode)])
      const chunks = chunk(stream, sizes)
      const expected = normalize(messages)

      const all = Wire.parseAll(chunks)
      assert.isTrue(Either.isRight(all))
      if (Either.isRight(all)) {
        assert.deepStrictEqual(normalize(all.right.messages), expected)
        const h = all.right.handshake!
        assert.deepStrictEqual(normalize([h.infoHash, h.peerId]), normalize([init.infoHash, init.peerId]))
        assert.deepStrictEqual([h.fast, h.extensions, h.dht], [init.fast, init.extensions, init.dht])
      }

      const views = parseViews(chunks)
      assert.isUndefined(views.error)
      assert.deepStrictEqual(normalize(views.messages), expected)
      assert.strictEqual(views.buffered, 0)

      // block targets: every other block goes into a caller buffer, the rest stay views
      let calls = 0
      const targets: Array<Uint8Array> = []
      const blocks: Array<Uint8Array> = []
      const targeted = parseViews(chunks, {
        blockTarget: (_index, _begin, length) => {
          if (calls++ % 2 === 1) return undefined
          const target = new Uint8Array(length + 3)
          targets.push(target)
          return target
        },
        onBlock: (block) => blocks.push(block)
      })
      assert.isUndefined(targeted.error)
      assert.deepStrictEqual(normalize(targeted.messages), expected)
      // one target asked per piece; the even ones got a buffer and their block is in it
      const pieces = messages.filter((m) => m._tag === "Piece").length
      assert.strictEqual(calls, pieces)
      assert.strictEqual(blocks.length, pieces)
      assert.strictEqual(targets.length, Math.ceil(pieces / 2))
      blocks.forEach((block, i) => {
        if (i % 2 === 0) {
          assert.strictEqual(block.buffer, targets[i / 2]!.buffer)
          assert.strictEqual(block.byteOffset, 0)
        } else {
          assert.isFalse(targets.some((t) => t.buffer === block.buffer))
        }
      })
    },
    { fastCheck: { numRuns: 300 } }
  )

  it.prop(
    "a piece streamed into its target is written there in place",
    { block: FastCheck.uint8Array({ minLength: 1, maxLength: 16384 }), sizes: chunkSizes },
    ({ block, sizes }) => {
      const stream = Wire.encode({ _tag: "Piece", index: 7, begin: 16384, block })
      const target = new Uint8Array(16384)
      let seen: Wire.Message | undefined
      const parser = new Wire.FrameParser(
        { onMessage: (m) => (seen = m) },
        {
          handshake: false,
          blockTarget: (index, begin, length) =>
            index === 7 && begin === 16384 && length === block.length ? target : undefined
        }
      )
      for (const c of chunk(stream, sizes)) assert.isUndefined(parser.feed(c))
      assert.strictEqual(seen?._tag, "Piece")
      if (seen?._tag === "Piece") {
        assert.strictEqual(seen.block.buffer, target.buffer)
        assert.deepStrictEqual(normalize(seen.block), normalize(block))
      }
    },
    { fastCheck: { numRuns: 100 } }
  )

  it.prop(
    "with onPiece, blocks go there (targeted or not) and every other message to onMessage, in order",
    { block: FastCheck.uint8Array({ minLength: 1, maxLength: 16384 }), sizes: chunkSizes },
    ({ block, sizes }) => {
      const stream = concat([
        Wire.encode({ _tag: "Piece", index: 3, begin: 0, block }),
        Wire.encode({ _tag: "Have", index: 5 }),
        Wire.encode({ _tag: "Piece", index: 4, begin: 16384, block })
      ])
      const target = new Uint8Array(16384)
      const seen: Array<string> = []
      const parser = new Wire.FrameParser(
        {
          onMessage: (m) => seen.push(m._tag === "Have" ? `have ${m.index}` : m._tag),
          onPiece: (index, begin, got) => {
            seen.push(`piece ${index} ${begin}`)
            assert.deepStrictEqual(normalize(got), normalize(block))
            if (index === 3) assert.strictEqual(got.buffer, target.buffer)
          }
        },
        { handshake: false, blockTarget: (index) => (index === 3 ? target : undefined) }
      )
      for (const c of chunk(stream, sizes)) assert.isUndefined(parser.feed(c))
      assert.deepStrictEqual(seen, ["piece 3 0", "have 5", "piece 4 16384"])
    },
    { fastCheck: { numRuns: 100 } }
  )

  it("a piece inside one chunk is a view of that chunk (zero copy)", () => {
    const block = new Uint8Array([1, 2, 3, 4])
    const stream = concat([
      Wire.encode({ _tag: "Have", index: 1 }),
      Wire.encode({ _tag: "Piece", index: 0, begin: 0, block })
    ])
    let view: Uint8Array | undefined
    const parser = new Wire.FrameParser(
      { onMessage: (m) => (m._tag === "Piece" ? (view = m.block) : undefined) },
      { handshake: false }
    )
    assert.isUndefined(parser.feed(stream))
    assert.strictEqual(view?.buffer, stream.buffer)
    assert.strictEqual(view?.byteOffset, 9 + 13)
  })

  it("pieceHeader + block equals the encoded piece message", () => {
    const block = new Uint8Array(16384).fill(9)
    const header = Wire.pieceHeader(3, 32768, block.length)
    assert.strictEqual(header.length, 13)
    assert.deepStrictEqual(
      normalize(concat([header, block])),
      normalize(Wire.encode({ _tag: "Piece", index: 3, begin: 32768, block }))
    )
  })

  it("handshake bits: fast is reserved[7] & 0x04, extensions reserved[5] & 0x10", () => {
    const hs = Wire.encodeHandshake({
      infoHash: new Uint8Array(20).fill(1),
      peerId: new Uint8Array(20).fill(2),
      fast: true,
      extensions: true
    })
    assert.strictEqual(hs.length, 68)
    assert.strictEqual(hs[0], 19)
    assert.strictEqual(Buffer.from(hs.subarray(1, 20)).toString("latin1"), "BitTorrent protocol")
    assert.strictEqual(hs[20 + 5], 0x10)
    assert.strictEqual(hs[20 + 7], 0x04)
    const parsed = Wire.decodeHandshake(hs)
    assert.isTrue(Either.isRight(parsed))
    if (Either.isRight(parsed)) {
      assert.isTrue(parsed.right.fast)
      assert.isTrue(parsed.right.extensions)
      assert.isFalse(parsed.right.dht)
    }
    const plain = Wire.decodeHandshake(
      Wire.encodeHandshake({ infoHash: new Uint8Array(20), peerId: new Uint8Array(20) })
    )
    assert.isTrue(Either.isRight(plain) && !plain.right.fast && !plain.right.extensions)
    const libtorrentReserved = new Uint8Array([0, 0, 0, 0, 0, 0x10, 0, 0x05])
    assert.isTrue(Wire.supportsFast(libtorrentReserved))
    assert.isTrue(Wire.supportsExtensions(libtorrentReserved))
    assert.isTrue(Wire.supportsDht(libtorrentReserved))
  })

  it("a wrong protocol string is refused as soon as its bytes arrive", () => {
    const parser = new Wire.FrameParser({ onMessage: () => {} })
    const error = parser.feed(new TextEncoder().encode("GET / HTTP/1.1\r\n"))
    assert.strictEqual(error?._tag, "WireError")
    assert.strictEqual(error?.reason, "Handshake")
    // stays failed
    assert.strictEqual(parser.feed(new Uint8Array(1)), error)
    const bad = Wire.encodeHandshake({ infoHash: new Uint8Array(20), peerId: new Uint8Array(20) })
    bad[5] = 0x58
    assert.strictEqual(
      new Wire.FrameParser({ onMessage: () => {} }).feed(bad.subarray(0, 10))?.reason,
      "Handshake"
    )
  })

  it("oversized length prefixes are refused before buffering", () => {
    const frame = new Uint8Array([0, 0x10, 0, 0, 7])
    const parser = new Wire.FrameParser({ onMessage: () => {} }, { handshake: false })
    const error = parser.feed(frame)
    assert.strictEqual(error?.reason, "Oversized")
    assert.strictEqual(error?.length, 0x100000)
    assert.strictEqual(error?.limit, Wire.maxMessageLength())
    assert.match(error!.message, /longer than allowed/)
    // split prefix, default limit: 16 KiB + 9 is fine, a 32 KiB block is not
    const big = Wire.encode({ _tag: "Piece", index: 0, begin: 0, block: new Uint8Array(32 * 1024) })
    const split = new Wire.FrameParser({ onMessage: () => {} }, { handshake: false })
    assert.isUndefined(split.feed(big.subarray(0, 2)))
    assert.strictEqual(split.feed(big.subarray(2, 100))?.reason, "Oversized")
  })

  it("a block above maxBlockLength is Oversized even under the frame limit", () => {
    const msg = Wire.encode({ _tag: "Piece", index: 0, begin: 0, block: new Uint8Array(1000) })
    const result = Wire.parseAll([msg], { handshake: false, maxBlockLength: 512, maxMessageLength: 4096 })
    assert.isTrue(Either.isLeft(result) && result.left.reason === "Oversized" && result.left.messageId === 7)
  })

  it("the default limit grows with the bitfield of a big torrent", () => {
    assert.strictEqual(Wire.maxMessageLength(), Wire.DEFAULT_MAX_EXTENDED + 2)
    assert.strictEqual(Wire.maxMessageLength({ pieces: 8 * 100_000 }), 100_001)
    const bits = new Uint8Array(100_000).fill(0xff)
    const result = Wire.parseAll([Wire.encodeBitfield(bits)], { handshake: false, pieces: 8 * 100_000 })
    assert.isTrue(Either.isRight(result) && result.right.messages[0]?._tag === "Bitfield")
    const refused = Wire.parseAll([Wire.encodeBitfield(bits)], { handshake: false })
    assert.isTrue(Either.isLeft(refused) && refused.left.reason === "Oversized")
  })

  it("malformed payload lengths give typed errors with the message id and stream offset", () => {
    const cases: Array<[Uint8Array, number]> = [
      [new Uint8Array([0, 0, 0, 2, 0, 0]), 0], // choke with a payload
      [new Uint8Array([0, 0, 0, 4, 4, 0, 0, 0]), 4], // 3-byte have
      [new Uint8Array([0, 0, 0, 5, 6, 0, 0, 0, 0]), 6], // short request
      [new Uint8Array([0, 0, 0, 5, 7, 0, 0, 0, 0]), 7], // piece without begin
      [new Uint8Array([0, 0, 0, 2, 9, 0]), 9], // 1-byte port
      [new Uint8Array([0, 0, 0, 1, 20]), 20] // extended without id
    ]
    for (const [frame, id] of cases) {
      const prefix = Wire.encode({ _tag: "Interested" })
      const result = Wire.parseAll([concat([prefix, frame])], { handshake: false })
      assert.isTrue(Either.isLeft(result), `id ${id}`)
      if (Either.isLeft(result)) {
        assert.strictEqual(result.left.reason, "Malformed")
        assert.strictEqual(result.left.messageId, id)
        assert.strictEqual(result.left.offset, prefix.length)
      }
    }
    const wrongBitfield = Wire.parseAll([Wire.encodeBitfield(new Uint8Array(3))], {
      handshake: false,
      pieces: 9
    })
    assert.isTrue(Either.isLeft(wrongBitfield) && wrongBitfield.left.reason === "Malformed")
  })

  it("unknown message ids pass through by default, or fail when asked", () => {
    const frame = new Uint8Array([0, 0, 0, 3, 0x63, 1, 2])
    const passed = Wire.parseAll([frame], { handshake: false })
    assert.isTrue(Either.isRight(passed))
    if (Either.isRight(passed))
      assert.deepStrictEqual(normalize(passed.right.messages), [
        { _tag: "Unknown", id: 0x63, payload: "0102" }
      ])
    const refused = Wire.parseAll([frame], { handshake: false, unknownMessages: "error" })
    assert.isTrue(
      Either.isLeft(refused) && refused.left.reason === "UnknownMessage" && refused.left.messageId === 0x63
    )
  })

  it("extension handshake round-trips m, v, reqq, p, yourip", () => {
    const frame = Wire.encodeExtensionHandshake({
      m: { ut_metadata: 3, ut_pex: 1 },
      v: "ezio 0.1.0",
      reqq: 500,
      p: 6881,
      yourip: new Uint8Array([127, 0, 0, 1])
    })
    const parsed = Wire.parseAll([frame], { handshake: false })
    assert.isTrue(Either.isRight(parsed))
    if (Either.isLeft(parsed)) return
    const message = parsed.right.messages[0]
    assert.strictEqual(message?._tag, "Extended")
    if (message?._tag !== "Extended") return
    assert.strictEqual(message.extendedId, 0)
    const hs = Wire.decodeExtensionHandshake(message.payload)
    assert.isTrue(Either.isRight(hs))
    if (Either.isRight(hs)) {
      assert.deepStrictEqual(hs.right.m, { ut_metadata: 3, ut_pex: 1 })
      assert.strictEqual(hs.right.v, "ezio 0.1.0")
      assert.strictEqual(hs.right.reqq, 500)
      assert.strictEqual(hs.right.p, 6881)
      assert.deepStrictEqual(normalize(hs.right.yourip), "7f000001")
    }
    const garbage = Wire.decodeExtensionHandshake(new TextEncoder().encode("d1:mi"))
    assert.isTrue(Either.isLeft(garbage) && garbage.left.reason === "Malformed")
  })

  it("extension handshake carries ezio's key; a handshake without it has none", () => {
    const decode = (frame: Uint8Array) => {
      const parsed = Wire.parseAll([frame], { handshake: false })
      const message = Either.isRight(parsed) ? parsed.right.messages[0] : undefined
      if (message?._tag !== "Extended") throw new Error("not an extended message")
      return Either.getOrThrow(Wire.decodeExtensionHandshake(message.payload))
    }
    assert.strictEqual(decode(Wire.encodeExtensionHandshake({ m: {}, ezio: 1 })).ezio, 1)
    assert.isUndefined(decode(Wire.encodeExtensionHandshake({ m: {}, v: "other" })).ezio)
  })

  it("keep-alives split byte by byte", () => {
    const parsed = parseViews(chunk(concat([Wire.encodeKeepAlive(), Wire.encodeKeepAlive()]), [1]), {
      handshake: false
    })
    assert.deepStrictEqual(parsed.messages, [{ _tag: "KeepAlive" }, { _tag: "KeepAlive" }])
  })

  it("allowed-fast set matches BEP 6's example", () => {
    const infoHash = new Uint8Array(20).fill(0xaa)
    assert.deepStrictEqual(
      Wire.allowedFastSet(7, 1313, infoHash, "80.4.4.200"),
      [1059, 431, 808, 1217, 287, 376, 1188]
    )
    assert.deepStrictEqual(
      Wire.allowedFastSet(9, 1313, infoHash, "80.4.4.200"),
      [1059, 431, 808, 1217, 287, 376, 1188, 353, 508]
    )
    assert.deepStrictEqual(Wire.allowedFastSet(3, 1313, infoHash, "::1"), [])
  })

  it("generated peer ids are 20 bytes with the client prefix", () => {
    const id = Session.makePeerId()
    assert.strictEqual(id.length, 20)
    assert.strictEqual(Buffer.from(id.subarray(0, 8)).toString("latin1"), "-EZ0100-")
  })
})
