/**
 * .torrent files (metainfo): decoding with `Schema` validation, v1 single- and multi-file, BEP 12
 * announce lists, BEP 52 hybrids through their v1 part, safe paths, and encoding. Pure.
 *
 * @since 0.1.0
 */
import * as NCrypto from "node:crypto"
import * as Data from "effect/Data"
import * as Either from "effect/Either"
import * as ParseResult from "effect/ParseResult"
import * as Schema from "effect/Schema"
import * as Bencode from "./Bencode.js"

/**
 * A file of the torrent, in torrent order.
 *
 * @since 0.1.0
 * @category models
 */
export interface FileInfo {
  /** Path components under the torrent's directory (multi-file) or `[name]` (single-file). */
  readonly path: ReadonlyArray<string>
  readonly length: number
  /** Offset of the file's first byte in the torrent's concatenated data. */
  readonly offset: number
  /** BEP 47 attributes (`p` pad, `x` executable, `h` hidden, `l` symlink), if any. */
  readonly attr?: string
}

/**
 * @since 0.1.0
 * @category models
 */
export interface Metainfo {
  /** SHA-1 of the info dictionary's original bytes (the v1 info-hash). */
  readonly infoHash: Uint8Array
  /** The info-hash as 40 lowercase hex digits. */
  readonly infoHashHex: string
  /** Hybrid torrents: SHA-256 of the info dictionary (the v2 info-hash). */
  readonly infoHashV2?: Uint8Array
  readonly version: "v1" | "hybrid"
  readonly name: string
  readonly pieceLength: number
  readonly pieceCount: number
  /** The v1 piece hashes, 20 bytes each, back to back. */
  readonly pieces: Uint8Array
  readonly files: ReadonlyArray<FileInfo>
  readonly totalLength: number
  /** `files` came from a `files` list (a directory), not a single `length`. */
  readonly multiFile: boolean
  readonly private: boolean
  /** BEP 12 tiers; the `announce` URL alone as one tier when there is no `announce-list`. */
  readonly trackers: ReadonlyArray<ReadonlyArray<string>>
  readonly announce?: string
  readonly comment?: string
  readonly createdBy?: string
  /** Seconds since the epoch. */
  readonly creationDate?: number
  /** BEP 19 web seeds. */
  readonly urlList: ReadonlyArray<string>
  /** The info dictionary as decoded, unknown keys included. */
  readonly info: Bencode.Dict
  /** The info dictionary's original bytes. */
  readonly infoBytes: Uint8Array
  /** The whole torrent as decoded, unknown keys included. */
  readonly torrent: Bencode.Dict
}

/**
 * @since 0.1.0
 * @category errors
 */
export type Reason =
  "Bencode" | "Schema" | "PieceLength" | "PieceCount" | "UnsafePath" | "V2Only" | "TooLarge" | "RawImage"

/**
 * @since 0.1.0
 * @category errors
 */
export class MetainfoError extends Data.TaggedError("MetainfoError")<{
  readonly reason: Reason
  /** What is wrong, in words a user can act on. */
  readonly detail: string
  /** The file entry at fault, if one is. */
  readonly file?: number
  readonly cause?: unknown
}> {
  override get message(): string {
    return `invalid torrent: ${this.detail}`
  }
}

// ---------------------------------------------------------------------------------------------
// The shape of a .torrent, as Schema at the edge: byte strings stay bytes until checked.

const Bytes = Schema.Uint8ArrayFromSelf
const NonNegativeInt = Schema.Number.pipe(Schema.int(), Schema.nonNegative())

const RawFile = Schema.Struct({
  length: NonNegativeInt,
  path: Schema.Array(Bytes),
  "path.utf-8": Schema.optional(Schema.Array(Bytes)),
  attr: Schema.optional(Bytes)
})

const RawInfo = Schema.Struct({
  name: Bytes,
  "name.utf-8": Schema.optional(Bytes),
  "piece length": Schema.Number.pipe(Schema.int()),
  pieces: Schema.optional(Bytes),
  length: Schema.optional(NonNegativeInt),
  files: Schema.optional(Schema.Array(RawFile)),
  private: Schema.optional(Schema.Number.pipe(Schema.int())),
  "meta version": Schema.optional(Schema.Number.pipe(Schema.int())),
  "file tree": Schema.optional(Schema.Unknown)
})

const RawTorrent = Schema.Struct({
  announce: Schema.optional(Bytes),
  "announce-list": Schema.optional(Schema.Array(Schema.Array(Bytes))),
  comment: Schema.optional(Bytes),
  "created by": Schema.optional(Bytes),
  "creation date": Schema.optional(Schema.Number.pipe(Schema.int())),
  "url-list": Schema.optional(Schema.Union(Bytes, Schema.Array(Bytes))),
  info: RawInfo
})

const decodeRaw = Schema.decodeUnknownEither(RawTorrent, { errors: "first" })

/**
 * @since 0.1.0
 * @category models
 */
export interface DecodeOptions {
  /** Largest .torrent accepted, in bytes. Default 64 MiB (libtorrent's default is 10 MB). */
  readonly maxBytes?: number
  /** Most pieces accepted. Default 0x200000 × 16 (libtorrent: 0x200000; raw images are big). */
  readonly maxPieces?: number
}

const text = (bytes: Uint8Array): string =>
  Bencode.toTextStrict(bytes) ?? Buffer.from(bytes).toString("latin1")

const optionalText = (bytes: Uint8Array | undefined): string | undefined =>
  bytes === undefined ? undefined : text(bytes)

/**
 * Why a path component is unsafe, or `undefined` if it is safe on every platform: no empty
 * components, `.` or `..`, no separators (`/`, `\`), NUL or drive letters.
 *
 * @since 0.1.0
 * @category validation
 */
export const unsafeComponent = (component: string): string | undefined => {
  if (component.length === 0) return "an empty path component"
  if (component === "." || component === "..") return `the path component "${component}"`
  if (component.includes("/") || component.includes("\\")) return `a separator in "${component}"`
  if (component.includes("\0")) return "a NUL byte in a path component"
  if (/^[A-Za-z]:/.test(component)) return `a drive letter in "${component}"`
  return undefined
}

const fail = (reason: Reason, detail: string, extra: { file?: number; cause?: unknown } = {}) =>
  Either.left(new MetainfoError({ reason, detail, ...extra }))

/**
 * The smallest piece length: one 16 KiB block, the unit peers request (and BEP 52's minimum).
 *
 * @since 0.1.0
 * @category validation
 */
export const minPieceLength = 16 * 1024

/**
 * The largest piece length: 256 MiB, the largest power of two libtorrent loads (its
 * `file_storage::max_piece_size` is 2^29 - 16 KiB) and mktorrent's largest (`-l 28`). A piece is
 * held, hashed and thrown away whole, so a larger one is either a mistake or an attack on memory.
 *
 * @since 0.1.0
 * @category validation
 */
export const maxPieceLength = 256 * 1024 * 1024

// Exact for every safe integer: a 32-bit `n & (n - 1)` wraps above 2^31 (2^32 + 2^31 passes it).
const isPowerOfTwo = (n: number) => Number.isSafeInteger(n) && n > 0 && 2 ** Math.round(Math.log2(n)) === n

/**
 * Why `pieceLength` cannot be a torrent's piece length, or `undefined` if it can: a power of two
 * from `minPieceLength` (16 KiB) to `maxPieceLength` (256 MiB).
 *
 * @since 0.1.0
 * @category validation
 */
export const pieceLengthProblem = (pieceLength: number): string | undefined =>
  isPowerOfTwo(pieceLength) && pieceLength >= minPieceLength && pieceLength <= maxPieceLength
    ? undefined
    : `piece length ${pieceLength} is not a power of two from 16 KiB to 256 MiB`

/**
 * Decodes and validates a .torrent. v1 and hybrid torrents are accepted (a hybrid through its v1
 * part); a pure v2 torrent fails with `V2Only`. Every rejection names what is wrong.
 *
 * @since 0.1.0
 * @category decoding
 */
export const decode = (
  bytes: Uint8Array,
  options: DecodeOptions = {}
): Either.Either<Metainfo, MetainfoError> => {
  const maxBytes = options.maxBytes ?? 64 * 1024 * 1024
  if (bytes.length > maxBytes)
    return fail("TooLarge", `the file is ${bytes.length} bytes, more than the limit of ${maxBytes}`)
  const first = bytes[0]
  const notDict =
    first === 0x6c
      ? "a list"
      : first === 0x69
        ? "an integer"
        : first !== undefined && first >= 0x30 && first <= 0x39
          ? "a string"
          : undefined
  if (notDict !== undefined)
    return fail("Schema", `the file holds ${notDict} where a torrent holds a dictionary (d...e)`)
  const decoded = Bencode.decodeDict(bytes, { maxBytes })
  if (Either.isLeft(decoded)) return fail("Bencode", decoded.left.message, { cause: decoded.left })
  const { value: torrent, spans } = decoded.right
  const parsed = decodeRaw(torrent)
  if (Either.isLeft(parsed)) {
    const issue = ParseResult.ArrayFormatter.formatErrorSync(parsed.left)[0]
    const where = issue === undefined || issue.path.length === 0 ? "the torrent" : issue.path.join(".")
    return fail("Schema", `${where}: ${issue?.message ?? "does not have the shape of a torrent"}`, {
      cause: parsed.left
    })
  }
  const raw = parsed.right
  const info = raw.info
  const [infoStart, infoEnd] = spans.get("info")!
  const infoBytes = bytes.subarray(infoStart, infoEnd)

  const hasV1 = info.pieces !== undefined && (info.length !== undefined || info.files !== undefined)
  const v2 = info["meta version"] === 2
  if (!hasV1) {
    if (v2)
      return fail(
        "V2Only",
        "this is a BitTorrent v2-only torrent (BEP 52); ezio supports v1 and hybrid torrents for now"
      )
    return fail("Schema", "info: needs `pieces` and either `length` or `files`")
  }
  if (info.length !== undefined && info.files !== undefined)
    return fail("Schema", "info: has both `length` and `files`")

  const pieceLength = info["piece length"]
  const pieceLengthIssue = pieceLengthProblem(pieceLength)
  if (pieceLengthIssue !== undefined) return fail("PieceLength", pieceLengthIssue)

  const name = text(info["name.utf-8"] ?? info.name)
  const nameProblem = unsafeComponent(name)
  if (nameProblem !== undefined) return fail("UnsafePath", `the torrent's name has ${nameProblem}`)

  const files: Array<FileInfo> = []
  let totalLength = 0
  if (info.files !== undefined) {
    if (info.files.length === 0) return fail("Schema", "info.files: is empty")
    for (let i = 0; i < info.files.length; i++) {
      const file = info.files[i]!
      const components = (file["path.utf-8"] ?? file.path).map(text)
      if (components.length === 0) return fail("UnsafePath", `file ${i} has an empty path`, { file: i })
      for (const component of components) {
        const problem = unsafeComponent(component)
        if (problem !== undefined)
          return fail("UnsafePath", `file ${i} (${components.join("/")}) has ${problem}`, { file: i })
      }
      const attr = optionalText(file.attr)
      files.push(
        attr === undefined
          ? { path: components, length: file.length, offset: totalLength }
          : { path: components, length: file.length, offset: totalLength, attr }
      )
      totalLength += file.length
      if (!Number.isSafeInteger(totalLength))
        return fail("TooLarge", "the files add up to more than 2^53 bytes")
    }
  } else {
    totalLength = info.length!
    files.push({ path: [name], length: totalLength, offset: 0 })
  }

  const pieces = info.pieces!
  if (pieces.length % 20 !== 0)
    return fail("PieceCount", `info.pieces is ${pieces.length} bytes, not a multiple of 20`)
  const pieceCount = pieces.length / 20
  const expected = Math.ceil(totalLength / pieceLength)
  if (pieceCount !== expected)
    return fail(
      "PieceCount",
      `info.pieces holds ${pieceCount} hashes but ${totalLength} bytes in pieces of ${pieceLength} need ${expected}`
    )
  const maxPieces = options.maxPieces ?? 0x200000 * 16
  if (pieceCount > maxPieces)
    return fail("TooLarge", `${pieceCount} pieces, more than the limit of ${maxPieces}`)

  const announce = optionalText(raw.announce)
  const tiers = (raw["announce-list"] ?? [])
    .map((tier) => tier.map(text).filter((url) => url.length > 0))
    .filter((tier) => tier.length > 0)
  const trackers =
    tiers.length > 0 ? tiers : announce !== undefined && announce.length > 0 ? [[announce]] : []
  const urlList =
    raw["url-list"] === undefined ? [] : Array.isArray(raw["url-list"]) ? raw["url-list"] : [raw["url-list"]]

  const infoHash = new Uint8Array(NCrypto.createHash("sha1").update(infoBytes).digest())
  const metainfo: Metainfo = {
    infoHash,
    infoHashHex: Buffer.from(infoHash).toString("hex"),
    ...(v2 ? { infoHashV2: new Uint8Array(NCrypto.createHash("sha256").update(infoBytes).digest()) } : {}),
    version: v2 ? "hybrid" : "v1",
    name,
    pieceLength,
    pieceCount,
    pieces,
    files,
    totalLength,
    multiFile: info.files !== undefined,
    private: info.private === 1,
    trackers,
    ...(announce !== undefined ? { announce } : {}),
    ...(raw.comment !== undefined ? { comment: text(raw.comment) } : {}),
    ...(raw["created by"] !== undefined ? { createdBy: text(raw["created by"]) } : {}),
    ...(raw["creation date"] !== undefined ? { creationDate: raw["creation date"] } : {}),
    urlList: (urlList as ReadonlyArray<Uint8Array>).map(text),
    info: torrent.info as Bencode.Dict,
    infoBytes,
    torrent
  }
  return Either.right(metainfo)
}

/**
 * The SHA-1 of piece `index`, a view into `pieces`.
 *
 * @since 0.1.0
 * @category getters
 */
export const pieceHash = (metainfo: Metainfo, index: number): Uint8Array =>
  metainfo.pieces.subarray(index * 20, index * 20 + 20)

/**
 * How a torrent's data is cut into pieces: what a `Metainfo`, a storage `Layout` and a peer's
 * piece picker all have.
 *
 * @since 0.1.0
 * @category models
 */
export interface PieceGeometry {
  readonly pieceLength: number
  readonly pieceCount: number
  readonly totalLength: number
}

/**
 * Bytes in piece `index` (the last one may be short). The one definition: `Layout.pieceSize` is
 * this function.
 *
 * @since 0.1.0
 * @category getters
 */
export const pieceSize = (torrent: PieceGeometry, index: number): number =>
  index < torrent.pieceCount - 1 ? torrent.pieceLength : torrent.totalLength - index * torrent.pieceLength

/**
 * What a new torrent is made of.
 *
 * @since 0.1.0
 * @category models
 */
export interface Fields {
  readonly name: string
  readonly pieceLength: number
  readonly pieces: Uint8Array
  /** One file with `path: [name]` and `single: true` makes a single-file torrent. */
  readonly files: ReadonlyArray<{ readonly path: ReadonlyArray<string>; readonly length: number }>
  readonly single?: boolean
  readonly trackers?: ReadonlyArray<ReadonlyArray<string>>
  readonly private?: boolean
  readonly comment?: string
  readonly createdBy?: string
  readonly creationDate?: number
  readonly urlList?: ReadonlyArray<string>
}

/**
 * Encodes a v1 torrent, then decodes it again so the result is exactly what a reader sees.
 *
 * @since 0.1.0
 * @category encoding
 */
export const make = (fields: Fields): Either.Either<Metainfo, MetainfoError> => {
  const info: Record<string, Bencode.Value> = {
    name: Bencode.text(fields.name),
    "piece length": fields.pieceLength,
    pieces: fields.pieces
  }
  if (fields.single === true && fields.files.length === 1) info.length = fields.files[0]!.length
  else
    info.files = fields.files.map((file) => ({
      length: file.length,
      path: file.path.map(Bencode.text)
    }))
  if (fields.private === true) info.private = 1
  const torrent: Record<string, Bencode.Value> = { info }
  const trackers = fields.trackers ?? []
  if (trackers.length > 0 && trackers[0]!.length > 0) torrent.announce = Bencode.text(trackers[0]![0]!)
  if (trackers.length > 1 || (trackers[0]?.length ?? 0) > 1)
    torrent["announce-list"] = trackers.map((tier) => tier.map(Bencode.text))
  if (fields.comment !== undefined) torrent.comment = Bencode.text(fields.comment)
  if (fields.createdBy !== undefined) torrent["created by"] = Bencode.text(fields.createdBy)
  if (fields.creationDate !== undefined) torrent["creation date"] = fields.creationDate
  if (fields.urlList !== undefined && fields.urlList.length > 0)
    torrent["url-list"] = fields.urlList.map(Bencode.text)
  return decode(Bencode.encode(torrent))
}

/**
 * The torrent's bytes: the original encoding for a decoded torrent (unknown keys and the info
 * dictionary's exact bytes preserved).
 *
 * @since 0.1.0
 * @category encoding
 */
export const encode = (metainfo: Metainfo): Uint8Array => Bencode.encode(metainfo.torrent)

/**
 * A torrent from an info dictionary's bytes and trackers, as a magnet link gives them (BEP 9):
 * the info bytes are kept exactly, so the info-hash is their SHA-1; each tracker is its own tier.
 * Validated like `decode`.
 *
 * @since 0.1.0
 * @category decoding
 */
export const fromInfo = (
  infoBytes: Uint8Array,
  trackers: ReadonlyArray<string> = [],
  options: DecodeOptions = {}
): Either.Either<Metainfo, MetainfoError> => {
  const head: Record<string, Bencode.Value> = {}
  const urls = trackers.filter((url) => url.length > 0)
  if (urls.length > 0) head.announce = Bencode.text(urls[0]!)
  if (urls.length > 1) head["announce-list"] = urls.map((url) => [Bencode.text(url)])
  // "announce" and "announce-list" sort before "info": splice the info bytes in as they are,
  // never re-encoded, so the info-hash stays theirs.
  const prefix = Bencode.encode(head)
  const infoKey = Bencode.text("4:info")
  const bytes = new Uint8Array(prefix.length - 1 + infoKey.length + infoBytes.length + 1)
  bytes.set(prefix.subarray(0, prefix.length - 1), 0)
  bytes.set(infoKey, prefix.length - 1)
  bytes.set(infoBytes, prefix.length - 1 + infoKey.length)
  bytes[bytes.length - 1] = 0x65 // "e"
  const decoded = decode(bytes, options)
  // Trailing bytes after the dictionary would be read as more keys: the info is not one value.
  if (Either.isRight(decoded) && decoded.right.infoBytes.length !== infoBytes.length)
    return fail("Bencode", "the info dictionary has bytes after its end")
  return decoded
}
