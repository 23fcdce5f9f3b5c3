// Where a torrent's data lives on this machine: a file or a block device (single-file torrents,
// the file's bytes from the device's offset 0), a directory (multi-file), or, for EZIO's raw-image
// torrents, an image file or a block device.
import * as NPath from "node:path"
import * as FileSystem from "@effect/platform/FileSystem"
import { Layout, Storage } from "@ezio/storage"
import { type Metainfo, RawImage } from "@ezio/torrent"
import * as Effect from "effect/Effect"
import * as Either from "effect/Either"
import { FileError, TargetError } from "./errors.js"
import * as Faults from "./faults.js"

export type Kind = "file" | "directory" | "raw"

// Hex-named files mean a raw image: an invalid extent is an invalid torrent, not a directory.
export const kindOf = (metainfo: Metainfo.Metainfo): Kind =>
  RawImage.namedAsExtents(metainfo) ? "raw" : metainfo.multiFile ? "directory" : "file"

/**
 * The layout for `data`: the file or directory named on the command line stands for the
 * torrent's name, so `ezio seed t.torrent /srv/other-name.img` works.
 */
export const layoutFor = (metainfo: Metainfo.Metainfo, data: string, kind: Kind): Layout.Layout => {
  if (kind === "raw") return Either.getOrThrow(Layout.fromMetainfo(metainfo, { raw: true }))
  const base = NPath.basename(NPath.resolve(data))
  return Layout.make({
    name: metainfo.name,
    pieceLength: metainfo.pieceLength,
    files:
      kind === "file"
        ? [{ path: [base], length: metainfo.totalLength }]
        : metainfo.files.map((f) => ({ path: [base, ...f.path], length: f.length }))
  })
}

export const open = (options: {
  readonly metainfo: Metainfo.Metainfo
  readonly data: string
  readonly mode: "read" | "readwrite"
}) =>
  Effect.gen(function* () {
    const { metainfo, data, mode } = options
    const kind = kindOf(metainfo)
    if (kind === "raw") yield* RawImage.fromMetainfo(metainfo)
    const layout = layoutFor(metainfo, data, kind)
    const fileIo = Faults.fromEnv()
    const io = fileIo === undefined ? {} : { fileIo }
    const fs = yield* FileSystem.FileSystem
    const type = yield* fs.stat(data).pipe(
      Effect.map((info) => info.type),
      Effect.catchIf(
        (cause) => cause._tag === "SystemError" && cause.reason === "NotFound",
        () => Effect.succeed(undefined)
      ),
      Effect.mapError((cause) => new FileError({ path: data, operation: "stat", cause }))
    )
    const exists = type !== undefined
    if (!exists && mode === "read")
      return yield* new TargetError({ path: data, detail: "does not exist (nothing to seed or verify)" })
    if (exists) {
      if (kind === "directory" && type !== "Directory")
        return yield* new TargetError({
          path: data,
          detail: "is not a directory, but the torrent holds several files"
        })
      if (kind === "file" && type !== "File" && type !== "BlockDevice")
        return yield* new TargetError({
          path: data,
          detail: "is neither a regular file nor a block device, but the torrent holds one file"
        })
      if (kind === "raw" && type !== "File" && type !== "BlockDevice")
        return yield* new TargetError({ path: data, detail: "is neither an image file nor a block device" })
    }
    const root = NPath.dirname(NPath.resolve(data))
    const storage =
      kind === "raw"
        ? yield* Storage.makeRaw({ layout, path: data, mode, grow: mode === "readwrite", ...io })
        : kind === "file" && type === "BlockDevice"
          ? // The file's bytes from the device's offset 0; makeRaw checks the device is large enough.
            yield* Storage.makeRaw({
              layout: Layout.make({
                name: metainfo.name,
                pieceLength: metainfo.pieceLength,
                files: [{ path: [metainfo.name], length: metainfo.totalLength, diskOffset: 0 }]
              }),
              path: data,
              mode,
              ...io
            })
          : yield* Storage.makeDirectory({ layout, root, mode, ...io })
    // `existed`: whether there was anything to check before this run created the target.
    return { kind, layout, storage, existed: exists }
  })
