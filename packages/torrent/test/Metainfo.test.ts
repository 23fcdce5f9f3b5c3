import { describe, expect, it } from "@effect/vitest"
import { Either } from "effect"
import { Bencode, Magnet, Metainfo, RawImage } from "@ezio/torrent"
import { sha1 } from "@ezio/test-support/data"

const t = Bencode.text

const baseInfo = (
  overrides: Record<string, Bencode.Value | undefined> = {}
): Record<string, Bencode.Value> => {
  const info: Record<string, Bencode.Value | undefined> = {
    name: t("disk.img"),
    "piece length": 16384,
    length: 40000,
    pieces: new Uint8Array(60),
    ...overrides
  }
  return Object.fromEntries(Object.entries(info).filter(([, v]) => v !== undefined)) as Record<
    string,
    Bencode.Value
  >
}

const torrentBytes = (info: Bencode.Value, top: Record<string, Bencode.Value> = {}) =>
  Bencode.encode({ announce: t("http://127.0.0.1:6969/announce"), ...top, info })

const decodeError = (bytes: Uint8Array) => {
  const result = Metainfo.decode(bytes)
  if (Either.isRight(result)) throw new Error("expected a MetainfoError")
  return result.left
}

describe("Metainfo", () => {
  it("decodes a single-file torrent and hashes the info dictionary's original bytes", () => {
    const info = baseInfo({ "x-unknown": t("kept") })
    const bytes = torrentBytes(info, {
      comment: t("a comment"),
      "creation date": 1700000000,
      "created by": t("me")
    })
    const meta = Either.getOrThrow(Metainfo.decode(bytes))
    expect(meta.name).toBe("disk.img")
    expect(meta.pieceCount).toBe(3)
    expect(meta.totalLength).toBe(40000)
    expect(meta.multiFile).toBe(false)
    expect(meta.files).toEqual([{ path: ["disk.img"], length: 40000, offset: 0 }])
    expect(meta.trackers).toEqual([["http://127.0.0.1:6969/announce"]])
    expect(meta.comment).toBe("a comment")
    expect(meta.creationDate).toBe(1700000000)
    expect(meta.createdBy).toBe("me")
    expect(Bencode.toText(meta.info["x-unknown"] as Uint8Array)).toBe("kept")
    expect(meta.infoHash).toEqual(sha1(Bencode.encode(info)))
    expect(meta.infoHashHex).toBe(Buffer.from(sha1(Bencode.encode(info))).toString("hex"))
    expect(Metainfo.encode(meta)).toEqual(bytes)
    expect(Metainfo.pieceSize(meta, 2)).toBe(40000 - 2 * 16384)
  })

  it("decodes a multi-file torrent with announce-list tiers and private flag", () => {
    const info = baseInfo({
      length: undefined,
      name: t("dir"),
      private: 1,
      files: [
        { length: 30000, path: [t("a"), t("b.bin")] },
        { length: 0, path: [t("empty")] },
        { length: 10000, path: [t("c")] }
      ]
    })
    const meta = Either.getOrThrow(
      Metainfo.decode(
        torrentBytes(info, {
          "announce-list": [[t("http://a/announce"), t("http://b/announce")], [t("udp://c:80")]]
        })
      )
    )
    expect(meta.multiFile).toBe(true)
    expect(meta.private).toBe(true)
    expect(meta.files.map((f) => [f.path.join("/"), f.offset])).toEqual([
      ["a/b.bin", 0],
      ["empty", 30000],
      ["c", 30000]
    ])
    expect(meta.trackers).toEqual([["http://a/announce", "http://b/announce"], ["udp://c:80"]])
  })

  it("says what a file holds when it is bencode but not a dictionary", () => {
    for (const [bytes, what] of [
      ["le", "a list"],
      ["li1ee", "a list"],
      ["i5e", "an integer"],
      ["3:abc", "a string"]
    ] as const) {
      const error = decodeError(Buffer.from(bytes))
      expect(error.reason).toBe("Schema")
      expect(error.message).toContain(`holds ${what} where a torrent holds a dictionary`)
    }
  })

  it("recognises hybrid torrents through their v1 part and refuses pure v2", () => {
    const hybrid = Either.getOrThrow(
      Metainfo.decode(torrentBytes(baseInfo({ "meta version": 2, "file tree": {} })))
    )
    expect(hybrid.version).toBe("hybrid")
    expect(hybrid.infoHashV2?.length).toBe(32)
    const v2 = decodeError(
      torrentBytes(baseInfo({ "meta version": 2, "file tree": {}, pieces: undefined, length: undefined }))
    )
    expect(v2.reason).toBe("V2Only")
    expect(v2.message).toContain("v2-only")
  })

  // A corpus of malformed torrents, each with its expected typed error.
  const corpus: ReadonlyArray<readonly [string, Uint8Array, Metainfo.Reason, string]> = [
    ["not bencode", t("d8:announce"), "Bencode", "invalid bencode at byte"],
    ["trailing garbage", new Uint8Array([...torrentBytes(baseInfo()), 0x78]), "Bencode", "bytes follow"],
    ["unsorted keys", t("d4:infod4:name1:xe8:announce0:e"), "Bencode", "not sorted"],
    ["not a dictionary", t("li1ee"), "Schema", "holds a list where a torrent holds a dictionary"],
    ["no info", Bencode.encode({ announce: t("x") }), "Schema", "info"],
    ["name is a number", torrentBytes(baseInfo({ name: 5 })), "Schema", "info.name"],
    ["negative length", torrentBytes(baseInfo({ length: -1 })), "Schema", "info.length"],
    ["no pieces", torrentBytes(baseInfo({ pieces: undefined })), "Schema", "pieces"],
    [
      "both length and files",
      torrentBytes(baseInfo({ files: [{ length: 1, path: [t("a")] }] })),
      "Schema",
      "both"
    ],
    [
      "piece length not a power of two",
      torrentBytes(baseInfo({ "piece length": 20000 })),
      "PieceLength",
      "20000"
    ],
    ["piece length too small", torrentBytes(baseInfo({ "piece length": 8192 })), "PieceLength", "8192"],
    [
      "piece length above 256 MiB",
      torrentBytes(baseInfo({ "piece length": 512 * 1024 * 1024, pieces: new Uint8Array(20) })),
      "PieceLength",
      "536870912"
    ],
    [
      // 32-bit arithmetic would take 2^32 + 2^31 for a power of two.
      "piece length 2^32 + 2^31",
      torrentBytes(baseInfo({ "piece length": 2 ** 32 + 2 ** 31, pieces: new Uint8Array(20) })),
      "PieceLength",
      "6442450944"
    ],
    [
      "pieces not a multiple of 20",
      torrentBytes(baseInfo({ pieces: new Uint8Array(59) })),
      "PieceCount",
      "59 bytes"
    ],
    ["too few pieces", torrentBytes(baseInfo({ pieces: new Uint8Array(40) })), "PieceCount", "need 3"],
    ["name ..", torrentBytes(baseInfo({ name: t("..") })), "UnsafePath", ".."],
    ["name with slash", torrentBytes(baseInfo({ name: t("a/b") })), "UnsafePath", "separator"],
    [
      "path with ..",
      torrentBytes(
        baseInfo({ length: undefined, files: [{ length: 40000, path: [t("ok"), t(".."), t("etc")] }] })
      ),
      "UnsafePath",
      "file 0"
    ],
    [
      "absolute path",
      torrentBytes(baseInfo({ length: undefined, files: [{ length: 40000, path: [t("/etc/passwd")] }] })),
      "UnsafePath",
      "separator"
    ],
    [
      "empty component",
      torrentBytes(baseInfo({ length: undefined, files: [{ length: 40000, path: [t("a"), t("")] }] })),
      "UnsafePath",
      "empty path component"
    ],
    [
      "backslash",
      torrentBytes(baseInfo({ length: undefined, files: [{ length: 40000, path: [t("a\\..\\b")] }] })),
      "UnsafePath",
      "separator"
    ],
    [
      "NUL",
      torrentBytes(baseInfo({ length: undefined, files: [{ length: 40000, path: [t("a\0b")] }] })),
      "UnsafePath",
      "NUL"
    ],
    [
      "drive letter",
      torrentBytes(baseInfo({ length: undefined, files: [{ length: 40000, path: [t("C:evil")] }] })),
      "UnsafePath",
      "drive letter"
    ],
    [
      "empty path",
      torrentBytes(baseInfo({ length: undefined, files: [{ length: 40000, path: [] }] })),
      "UnsafePath",
      "empty path"
    ],
    ["empty files", torrentBytes(baseInfo({ length: undefined, files: [] })), "Schema", "empty"],
    ["deep nesting", t("d4:info" + "l".repeat(200) + "e".repeat(200) + "e"), "Bencode", "too deep"]
  ]
  for (const [name, bytes, reason, text] of corpus) {
    it(`rejects ${name} with ${reason}`, () => {
      const error = decodeError(bytes)
      expect(error._tag).toBe("MetainfoError")
      expect(error.reason).toBe(reason)
      expect(error.message).toContain(text)
    })
  }

  it("bounds the piece length to powers of two from 16 KiB to 256 MiB, exactly at any size", () => {
    for (const ok of [16384, 1024 * 1024, 256 * 1024 * 1024]) {
      expect(Metainfo.pieceLengthProblem(ok)).toBeUndefined()
      const meta = Either.getOrThrow(
        Metainfo.decode(
          torrentBytes(baseInfo({ "piece length": ok, pieces: new Uint8Array(ok === 16384 ? 60 : 20) }))
        )
      )
      expect(meta.pieceLength).toBe(ok)
    }
    for (const bad of [
      0,
      -16384,
      8192,
      16385,
      3 * 16384,
      512 * 1024 * 1024,
      2 ** 31,
      2 ** 32,
      2 ** 32 + 2 ** 31,
      2 ** 53,
      1.5
    ])
      expect(Metainfo.pieceLengthProblem(bad)).toContain(`piece length ${bad} `)
  })

  it("makes a torrent that decodes to the same fields", () => {
    const made = Either.getOrThrow(
      Metainfo.make({
        name: "set",
        pieceLength: 32768,
        pieces: new Uint8Array(40),
        files: [
          { path: ["x"], length: 40000 },
          { path: ["y", "z"], length: 1000 }
        ],
        trackers: [["http://t1/announce"], ["http://t2/announce"]],
        private: true,
        comment: "c",
        createdBy: "ezio",
        creationDate: 1
      })
    )
    expect(made.trackers).toEqual([["http://t1/announce"], ["http://t2/announce"]])
    expect(made.announce).toBe("http://t1/announce")
    expect(made.totalLength).toBe(41000)
    expect(made.private).toBe(true)
  })
})

describe("RawImage", () => {
  const raw = (files: ReadonlyArray<readonly [string, number]>) =>
    Either.getOrThrow(
      Metainfo.make({
        name: "sda1",
        pieceLength: 16384,
        pieces: new Uint8Array(20 * Math.ceil(files.reduce((s, [, l]) => s + l, 0) / 16384)),
        files: files.map(([name, length]) => ({ path: [name], length }))
      })
    )

  it("tells a torrent meant as a raw image (hex-named files) from a directory torrent", () => {
    expect(RawImage.namedAsExtents(raw([["1ffffffffff000", 4096]]))).toBe(true)
    expect(RawImage.isRawImage(raw([["1ffffffffff000", 4096]]))).toBe(false)
    const directory = Either.getOrThrow(
      Metainfo.make({
        name: "d",
        pieceLength: 16384,
        pieces: new Uint8Array(20),
        files: [{ path: ["readme.txt"], length: 10 }]
      })
    )
    expect(RawImage.namedAsExtents(directory)).toBe(false)
  })

  it("turns hex-named files into extents, any width", () => {
    const meta = raw([
      ["0000000000000000", 4096],
      ["00000000000000000000000000100000", 8192],
      ["200000", 100]
    ])
    const image = Either.getOrThrow(RawImage.fromMetainfo(meta))
    expect(image.extents).toEqual([
      { diskOffset: 0, length: 4096, offset: 0 },
      { diskOffset: 0x100000, length: 8192, offset: 4096 },
      { diskOffset: 0x200000, length: 100, offset: 12288 }
    ])
    expect(image.diskEnd).toBe(0x200000 + 100)
    expect(image.width).toBe(32)
    expect(RawImage.isRawImage(meta)).toBe(true)
    expect(RawImage.fileName(0x1000000)).toBe("0000000001000000")
  })

  const bad: ReadonlyArray<readonly [string, ReadonlyArray<readonly [string, number]>, string]> = [
    [
      "a non-hex name",
      [
        ["0000", 10],
        ["xyz", 10]
      ],
      'file 1 ("xyz") is not named by a hexadecimal'
    ],
    [
      "overlapping extents",
      [
        ["0000", 0x2000],
        ["1000", 10]
      ],
      "inside the previous extent, which ends at 8192"
    ],
    [
      "unsorted extents",
      [
        ["2000", 10],
        ["1000", 10]
      ],
      "extents must be sorted"
    ],
    [
      "an empty extent",
      [
        ["0000", 0],
        ["1000", 10]
      ],
      "empty extent"
    ],
    ["an offset past 2^53", [["ffffffffffffffffff", 10]], "past 2^53"],
    ["an extent ending at 2^53", [["1ffffffffff000", 4096]], "ends past 2^53"]
  ]
  for (const [name, files, text] of bad) {
    it(`rejects ${name}`, () => {
      const result = RawImage.fromMetainfo(raw(files))
      expect(Either.isLeft(result)).toBe(true)
      if (Either.isLeft(result)) {
        expect(result.left.reason).toBe("RawImage")
        expect(result.left.message).toContain(text)
      }
    })
  }

  it("parses partclone's torrent.info", () => {
    const info = [
      "block_size: 1024",
      "blocks_total: 98304",
      "offset: 00000000000000000000000000000000",
      "length: 00000000000000000000000001000000",
      "sha1: 305c0855f22e62a7c45bb8b7b1f4366b6bc10e5c",
      "offset: 00000000000000000000000001000000",
      "length: 00000000000000000000000000dcc000",
      "sha1: 0000000000000000000000000000000000000000",
      ""
    ].join("\n")
    const parsed = Either.getOrThrow(RawImage.parsePartcloneInfo(info))
    expect(parsed.blockSize).toBe(1024)
    expect(parsed.blocksTotal).toBe(98304)
    expect(parsed.width).toBe(32)
    expect(parsed.extents).toEqual([
      { diskOffset: 0, length: 0x1000000 },
      { diskOffset: 0x1000000, length: 0xdcc000 }
    ])
    expect(Buffer.from(parsed.pieceHashes.subarray(0, 20)).toString("hex")).toBe(
      "305c0855f22e62a7c45bb8b7b1f4366b6bc10e5c"
    )
    expect(
      Either.isLeft(RawImage.parsePartcloneInfo("offset: 10\nlength: 20\noffset: 15\nlength: 1\n"))
    ).toBe(true)
    expect(Either.isLeft(RawImage.parsePartcloneInfo("offset: zz\nlength: 20\n"))).toBe(true)
    expect(Either.isLeft(RawImage.parsePartcloneInfo("offset: 10\nlength: 20\nsha1: 00\n"))).toBe(true)
  })
})

describe("Magnet", () => {
  it("parses hex and base32 info-hashes, names, trackers and peers, and prints them back", () => {
    const hex = "c12fe1c06bba254a9dc9f519b335aa7c1367a88a"
    const link = `magnet:?xt=urn:btih:${hex}&dn=disk%20image&tr=http%3A%2F%2F127.0.0.1%3A6969%2Fannounce&tr=udp://127.0.0.1:6969&x.pe=127.0.0.1:6881`
    const magnet = Either.getOrThrow(Magnet.parse(link))
    expect(Buffer.from(magnet.infoHash!).toString("hex")).toBe(hex)
    expect(magnet.name).toBe("disk image")
    expect(magnet.trackers).toEqual(["http://127.0.0.1:6969/announce", "udp://127.0.0.1:6969"])
    expect(magnet.peers).toEqual(["127.0.0.1:6881"])
    expect(Either.getOrThrow(Magnet.parse(Magnet.format(magnet)))).toEqual(magnet)
    const b32 = Either.getOrThrow(Magnet.parse("magnet:?xt=urn:btih:YEX6DQDLXISUVHOJ6UM3GNNKPQJWPKEK"))
    expect(Buffer.from(b32.infoHash!).toString("hex")).toBe(hex)
    const v2 = Either.getOrThrow(Magnet.parse(`magnet:?xt=urn:btmh:1220${"ab".repeat(32)}`))
    expect(v2.infoHashV2?.length).toBe(32)
  })

  it("rejects links without an info-hash or with a bad one", () => {
    for (const bad of ["http://x", "magnet:?dn=x", "magnet:?xt=urn:btih:123", "magnet:?xt=urn:btih:%ZZ"]) {
      const result = Magnet.parse(bad)
      expect(Either.isLeft(result)).toBe(true)
      if (Either.isLeft(result)) expect(result.left.message).toMatch(/^invalid magnet link: /)
    }
  })
})

describe("Metainfo.fromInfo", () => {
  it("wraps an info dictionary's exact bytes with a magnet's trackers, one tier each", () => {
    const original = Either.getOrThrow(Metainfo.decode(torrentBytes(baseInfo())))
    const meta = Either.getOrThrow(
      Metainfo.fromInfo(original.infoBytes, ["http://a/announce", "udp://b:6969"])
    )
    expect(meta.infoHashHex).toBe(original.infoHashHex)
    expect(Buffer.compare(meta.infoBytes, original.infoBytes)).toBe(0)
    expect(meta.trackers).toEqual([["http://a/announce"], ["udp://b:6969"]])
    expect(meta.announce).toBe("http://a/announce")
    expect(meta.totalLength).toBe(40000)
    const bare = Either.getOrThrow(Metainfo.fromInfo(original.infoBytes))
    expect(bare.trackers).toEqual([])
    expect(bare.infoHashHex).toBe(original.infoHashHex)
  })

  it("keeps an info dictionary's unknown keys, so the info-hash is still the SHA-1 of its bytes", () => {
    const infoBytes = Bencode.encode({ ...baseInfo(), "x-custom": t("kept") })
    const meta = Either.getOrThrow(Metainfo.fromInfo(infoBytes))
    expect(meta.infoHashHex).toBe(Buffer.from(sha1(infoBytes)).toString("hex"))
  })

  it("refuses what is not one valid info dictionary", () => {
    const good = Bencode.encode(baseInfo())
    const trailing = new Uint8Array([...good, ...Bencode.text("4:zzzz4:abcd")])
    for (const bad of [Bencode.text("i3e"), good.subarray(0, good.length - 1), trailing]) {
      expect(Either.isLeft(Metainfo.fromInfo(bad))).toBe(true)
    }
    const noPieces = Bencode.encode(baseInfo({ pieces: undefined }))
    const result = Metainfo.fromInfo(noPieces)
    expect(Either.isLeft(result) && result.left.reason).toBe("Schema")
  })
})
