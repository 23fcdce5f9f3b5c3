/**
 * Where a torrent's bytes live: its files in torrent order, each with its offset in the torrent's
 * concatenated data and, for EZIO's raw-image torrents, its offset on the disk. Pure data and pure
 * functions.
 *
 * @since 0.1.0
 */
import { Metainfo, RawImage } from "@ezio/torrent"
import * as Either from "effect/Either"

/**
 * @since 0.1.0
 * @category models
 */
export interface FileEntry {
  /** Path components under the target's root (directory targets); never `..`, absolute or empty. */
  readonly path: ReadonlyArray<string>
  readonly length: number
  /** Offset of the file's first byte in the torrent's data. */
  readonly offset: number
  /** Raw targets: where the file's first byte lives on the image or device. */
  readonly diskOffset?: number
}

/**
 * @since 0.1.0
 * @category models
 */
export interface Layout {
  readonly name: string
  readonly pieceLength: number
  readonly pieceCount: number
  readonly totalLength: number
  readonly files: ReadonlyArray<FileEntry>
}

/**
 * A contiguous run of bytes inside one file.
 *
 * @since 0.1.0
 * @category models
 */
export interface Span {
  readonly file: number
  readonly fileOffset: number
  readonly length: number
}

/**
 * Builds a layout from files in torrent order, computing their offsets.
 *
 * @since 0.1.0
 * @category constructors
 */
export const make = (options: {
  readonly name: string
  readonly pieceLength: number
  readonly files: ReadonlyArray<{
    readonly path: ReadonlyArray<string>
    readonly length: number
    readonly diskOffset?: number
  }>
}): Layout => {
  let offset = 0
  const files = options.files.map((file): FileEntry => {
    const entry: FileEntry =
      file.diskOffset === undefined
        ? { path: file.path, length: file.length, offset }
        : { path: file.path, length: file.length, offset, diskOffset: file.diskOffset }
    offset += file.length
    return entry
  })
  return {
    name: options.name,
    pieceLength: options.pieceLength,
    pieceCount: Math.ceil(offset / options.pieceLength),
    totalLength: offset,
    files
  }
}

/**
 * The layout of a decoded torrent. With `raw: true` each file is placed at the disk offset its
 * hex name gives (EZIO's raw-image format); the torrent must be a valid raw image.
 *
 * @since 0.1.0
 * @category constructors
 */
export const fromMetainfo = (
  metainfo: Metainfo.Metainfo,
  options: { readonly raw?: boolean } = {}
): Either.Either<Layout, Metainfo.MetainfoError> => {
  if (options.raw !== true)
    return Either.right(
      make({
        name: metainfo.name,
        pieceLength: metainfo.pieceLength,
        files: metainfo.multiFile
          ? metainfo.files.map((f) => ({ path: [metainfo.name, ...f.path], length: f.length }))
          : metainfo.files
      })
    )
  return Either.map(RawImage.fromMetainfo(metainfo), (image) =>
    make({
      name: metainfo.name,
      pieceLength: metainfo.pieceLength,
      files: metainfo.files.map((f, i) => ({
        path: f.path,
        length: f.length,
        diskOffset: image.extents[i]!.diskOffset
      }))
    })
  )
}

/**
 * Bytes in piece `piece` (the last one may be short): `Metainfo.pieceSize`, the one definition.
 *
 * @since 0.1.0
 * @category getters
 */
export const pieceSize: (layout: Layout, piece: number) => number = Metainfo.pieceSize

/**
 * The end of the furthest extent on disk: the smallest raw target that can hold the torrent.
 *
 * @since 0.1.0
 * @category getters
 */
export const diskEnd = (layout: Layout): number =>
  layout.files.reduce((end, file) => Math.max(end, (file.diskOffset ?? file.offset) + file.length), 0)

/**
 * The files' spans that hold `length` bytes from `offset` of the torrent's data, skipping
 * zero-length files. Out-of-range requests return `undefined`.
 *
 * @since 0.1.0
 * @category getters
 */
export const spans = (layout: Layout, offset: number, length: number): Array<Span> | undefined => {
  if (!Number.isSafeInteger(offset) || !Number.isSafeInteger(length) || offset < 0 || length < 0)
    return undefined
  if (offset + length > layout.totalLength) return undefined
  const out: Array<Span> = []
  if (length === 0) return out
  const files = layout.files
  // The last file starting at or before offset (binary search: torrents may have 100k files).
  let lo = 0
  let hi = files.length - 1
  while (lo < hi) {
    const mid = (lo + hi + 1) >>> 1
    if (files[mid]!.offset <= offset) lo = mid
    else hi = mid - 1
  }
  let remaining = length
  let position = offset
  for (let i = lo; i < files.length && remaining > 0; i++) {
    const file = files[i]!
    if (file.length === 0 || position >= file.offset + file.length) continue
    const fileOffset = position - file.offset
    const n = Math.min(remaining, file.length - fileOffset)
    out.push({ file: i, fileOffset, length: n })
    remaining -= n
    position += n
  }
  return out
}

/**
 * The files a piece touches (for syncing a piece or checking which files exist).
 *
 * @since 0.1.0
 * @category getters
 */
export const filesOfPiece = (layout: Layout, piece: number): Array<number> =>
  (spans(layout, piece * layout.pieceLength, pieceSize(layout, piece)) ?? []).map((s) => s.file)
