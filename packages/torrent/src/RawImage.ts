/**
 * EZIO's raw-image torrents: a multi-file torrent whose files are named by their offset on the
 * disk in hexadecimal (EZIO's docs show 16 digits, partclone's `torrent.info` writes 32; any width
 * is accepted), each as long as the used extent it holds. Gaps between extents are unused
 * file-system blocks that a deploy never reads or writes. Also partclone's `torrent.info`, the
 * used-block map real deployments start from. Pure.
 *
 * @since 0.1.0
 */
import * as Either from "effect/Either"
import { type Metainfo, MetainfoError } from "./Metainfo.js"

/**
 * A used run of the disk and where it sits in the torrent's data.
 *
 * @since 0.1.0
 * @category models
 */
export interface Extent {
  /** Byte offset on the disk or image. */
  readonly diskOffset: number
  readonly length: number
  /** Offset in the torrent's concatenated data. */
  readonly offset: number
}

/**
 * @since 0.1.0
 * @category models
 */
export interface RawImage {
  readonly extents: ReadonlyArray<Extent>
  /** The end of the last extent: the smallest disk that can hold the image. */
  readonly diskEnd: number
  /** Digits in the file names (16 in EZIO's docs, 32 from partclone). */
  readonly width: number
}

const HEX = /^[0-9a-fA-F]+$/

const fail = (detail: string, file?: number) =>
  Either.left(
    new MetainfoError(
      file === undefined ? { reason: "RawImage", detail } : { reason: "RawImage", detail, file }
    )
  )

/**
 * The extents of an EZIO raw-image torrent, validated: every file is one path component of hex
 * digits that parses to a safe offset, no extent is empty, and extents are sorted and do not
 * overlap. Fails with `RawImage` and the file at fault otherwise.
 *
 * @since 0.1.0
 * @category decoding
 */
export const fromMetainfo = (metainfo: Metainfo): Either.Either<RawImage, MetainfoError> => {
  if (!metainfo.multiFile)
    return fail("a raw-image torrent lists its extents as files; this one has a single file")
  const extents: Array<Extent> = []
  let width = 0
  let previousEnd = -1
  for (let i = 0; i < metainfo.files.length; i++) {
    const file = metainfo.files[i]!
    const name = file.path.join("/")
    if (file.path.length !== 1 || !HEX.test(file.path[0]!))
      return fail(`file ${i} ("${name}") is not named by a hexadecimal disk offset`, i)
    const big = BigInt(`0x${file.path[0]}`)
    if (big > BigInt(Number.MAX_SAFE_INTEGER)) return fail(`file ${i} ("${name}") has an offset past 2^53`, i)
    const diskOffset = Number(big)
    if (file.length === 0) return fail(`file ${i} ("${name}") is an empty extent`, i)
    if (diskOffset + file.length > Number.MAX_SAFE_INTEGER)
      return fail(`file ${i} ("${name}") ends past 2^53 bytes, beyond any disk`, i)
    if (diskOffset < previousEnd)
      return fail(
        `file ${i} ("${name}") starts at ${diskOffset}, ${
          extents.length > 0 && diskOffset < extents[extents.length - 1]!.diskOffset
            ? "before the previous extent (extents must be sorted)"
            : `inside the previous extent, which ends at ${previousEnd}`
        }`,
        i
      )
    previousEnd = diskOffset + file.length
    width = Math.max(width, file.path[0]!.length)
    extents.push({ diskOffset, length: file.length, offset: file.offset })
  }
  return Either.right({ extents, diskEnd: previousEnd, width })
}

/**
 * Whether a torrent's files are all named as EZIO's extents are (one hexadecimal component each):
 * it is meant as a raw image, so an invalid extent is an error rather than a directory torrent.
 *
 * @since 0.1.0
 * @category guards
 */
export const namedAsExtents = (metainfo: Metainfo): boolean =>
  metainfo.multiFile && metainfo.files.every((file) => file.path.length === 1 && HEX.test(file.path[0]!))

/**
 * Whether a torrent is in EZIO's raw-image format (its files are valid hex-offset extents).
 *
 * @since 0.1.0
 * @category guards
 */
export const isRawImage = (metainfo: Metainfo): boolean => Either.isRight(fromMetainfo(metainfo))

/**
 * The file name for an extent at `diskOffset`: lowercase hex, zero-padded to `width` digits.
 *
 * @since 0.1.0
 * @category encoding
 */
export const fileName = (diskOffset: number, width = 16): string =>
  diskOffset.toString(16).padStart(width, "0")

/**
 * What partclone's `torrent.info` says: the file system's block size and count, the used extents
 * in disk order, and the SHA-1 of each 16 MiB piece over the extents' concatenation.
 *
 * @since 0.1.0
 * @category models
 */
export interface PartcloneInfo {
  readonly blockSize?: number
  readonly blocksTotal?: number
  readonly extents: ReadonlyArray<{ readonly diskOffset: number; readonly length: number }>
  /** The `sha1:` lines, 20 bytes each, back to back. */
  readonly pieceHashes: Uint8Array
  /** Digits of the `offset:` fields (32 from partclone 0.3). */
  readonly width: number
}

/**
 * The piece length partclone's `--buffer_size 16777216` hashes with, and EZIO's torrents use.
 *
 * @since 0.1.0
 * @category constants
 */
export const partclonePieceLength = 16 * 1024 * 1024

/**
 * Parses partclone's `torrent.info` (`partclone.<fs> -c -t -s <image> -O <dir>/`): lines of
 * `block_size:`, `blocks_total:`, `offset:` and `length:` (hex) and `sha1:`. Extents must be
 * sorted and not overlap; adjacent ones are kept apart, as EZIO's own script keeps them.
 *
 * @since 0.1.0
 * @category decoding
 */
export const parsePartcloneInfo = (input: string): Either.Either<PartcloneInfo, MetainfoError> => {
  const extents: Array<{ diskOffset: number; length: number }> = []
  const hashes: Array<Buffer> = []
  let blockSize: number | undefined
  let blocksTotal: number | undefined
  let pendingOffset: number | undefined
  let width = 0
  const lines = input.split(/\r?\n/)
  const hex = (value: string, line: number): number | string => {
    if (!HEX.test(value)) return `line ${line}: "${value}" is not hexadecimal`
    const big = BigInt(`0x${value}`)
    if (big > BigInt(Number.MAX_SAFE_INTEGER)) return `line ${line}: ${value} is past 2^53`
    return Number(big)
  }
  for (let i = 0; i < lines.length; i++) {
    const line = lines[i]!.trim()
    if (line.length === 0) continue
    const colon = line.indexOf(":")
    if (colon < 0) return fail(`torrent.info line ${i + 1}: expected "key: value", got "${line}"`)
    const key = line.slice(0, colon).trim()
    const value = line.slice(colon + 1).trim()
    switch (key) {
      case "block_size":
      case "blocks_total": {
        const n = Number.parseInt(value, 10)
        if (!Number.isSafeInteger(n) || n < 0 || !/^\d+$/.test(value))
          return fail(`torrent.info line ${i + 1}: ${key} "${value}" is not a number`)
        if (key === "block_size") blockSize = n
        else blocksTotal = n
        break
      }
      case "offset": {
        if (pendingOffset !== undefined)
          return fail(`torrent.info line ${i + 1}: offset without a length before it`)
        const n = hex(value, i + 1)
        if (typeof n === "string") return fail(`torrent.info ${n}`)
        const last = extents[extents.length - 1]
        if (last !== undefined && n < last.diskOffset + last.length)
          return fail(`torrent.info line ${i + 1}: extent at ${n} overlaps or precedes the previous one`)
        pendingOffset = n
        width = Math.max(width, value.length)
        break
      }
      case "length": {
        if (pendingOffset === undefined) return fail(`torrent.info line ${i + 1}: length without an offset`)
        const n = hex(value, i + 1)
        if (typeof n === "string") return fail(`torrent.info ${n}`)
        if (n === 0) return fail(`torrent.info line ${i + 1}: an empty extent`)
        extents.push({ diskOffset: pendingOffset, length: n })
        pendingOffset = undefined
        break
      }
      case "sha1": {
        if (!/^[0-9a-fA-F]{40}$/.test(value))
          return fail(`torrent.info line ${i + 1}: "${value}" is not a SHA-1`)
        hashes.push(Buffer.from(value, "hex"))
        break
      }
      default:
        // Unknown keys are tolerated: newer partclone versions may add some.
        break
    }
  }
  if (pendingOffset !== undefined) return fail("torrent.info ends with an offset but no length")
  if (extents.length === 0) return fail("torrent.info lists no used extents")
  const total = extents.reduce((sum, e) => sum + e.length, 0)
  const expected = Math.ceil(total / partclonePieceLength)
  if (hashes.length !== 0 && hashes.length !== expected)
    return fail(
      `torrent.info has ${hashes.length} sha1 lines but ${total} used bytes in 16 MiB pieces need ${expected}`
    )
  return Either.right({
    ...(blockSize !== undefined ? { blockSize } : {}),
    ...(blocksTotal !== undefined ? { blocksTotal } : {}),
    extents,
    pieceHashes: new Uint8Array(Buffer.concat(hashes)),
    width
  })
}
