// `ezio create`: a .torrent of a file, a directory, or a raw disk image.
import * as Args from "@effect/cli/Args"
import * as Command from "@effect/cli/Command"
import * as Options from "@effect/cli/Options"
import { Create, Hasher } from "@ezio/storage"
import { Metainfo } from "@ezio/torrent"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Option from "effect/Option"
import { emit, json, progressLine, readText, trackers, writeFile } from "../common.js"
import { formatBytes, parseSize } from "../format.js"
import * as Heap from "../heap.js"

export const create = Command.make(
  "create",
  {
    path: Args.path({ name: "path" }).pipe(
      Args.withDescription("A file, a directory, or (with --raw) a disk image or block device")
    ),
    output: Options.file("output").pipe(
      Options.withAlias("o"),
      Options.optional,
      Options.withDescription("Where to write the .torrent (default: <name>.torrent)")
    ),
    raw: Options.boolean("raw").pipe(
      Options.withDescription(
        "Make an EZIO raw-image torrent (files named by hex disk offset; zero space skipped)"
      )
    ),
    partcloneInfo: Options.file("partclone-info").pipe(
      Options.optional,
      Options.withDescription("With --raw: partclone's torrent.info for the image (used extents and hashes)")
    ),
    granularity: Options.text("granularity").pipe(
      Options.withDefault("1MiB"),
      Options.withDescription("With --raw: all-zero runs of this size are skipped (multiple of 4KiB)")
    ),
    pieceLength: Options.text("piece-length").pipe(
      Options.optional,
      Options.withDescription("Piece length, a power of two >= 16KiB (default: about 1500 pieces)")
    ),
    trackers,
    comment: Options.text("comment").pipe(Options.optional),
    private: Options.boolean("private").pipe(Options.withDescription("Set the private flag (BEP 27)")),
    name: Options.text("name").pipe(Options.optional, Options.withDescription("The torrent's name")),
    json
  },
  (args) =>
    Effect.gen(function* () {
      const pieceLength = Option.isSome(args.pieceLength)
        ? yield* parseSize(args.pieceLength.value, "--piece-length")
        : undefined
      const progress = progressLine(args.json)
      const common = {
        ...(pieceLength !== undefined ? { pieceLength } : {}),
        ...(args.trackers.length > 0 ? { trackers: args.trackers.map((url) => [url]) } : {}),
        ...(Option.isSome(args.comment) ? { comment: args.comment.value } : {}),
        ...(Option.isSome(args.name) ? { name: args.name.value } : {}),
        private: args.private,
        onProgress: (p: Create.Progress) =>
          progress.show(`hashing ${formatBytes(p.hashedBytes)} / ${formatBytes(p.totalBytes)}`)
      }
      const [elapsed, { meta, output }] = yield* Effect.timed(
        Effect.gen(function* () {
          const meta = args.raw
            ? yield* Create.fromRawImage(args.path, {
                ...common,
                granularity: yield* parseSize(args.granularity, "--granularity"),
                ...(Option.isSome(args.partcloneInfo)
                  ? { partcloneInfo: yield* readText(args.partcloneInfo.value) }
                  : {})
              })
            : yield* Create.fromPath(args.path, common)
          const output = Option.getOrElse(args.output, () => `${meta.name}.torrent`)
          yield* writeFile(output, Metainfo.encode(meta))
          return { meta, output }
        })
      )
      const seconds = Duration.toSeconds(elapsed)
      yield* progress.clear
      yield* emit(
        args.json,
        {
          torrent: output,
          infoHash: meta.infoHashHex,
          pieces: meta.pieceCount,
          bytes: meta.totalLength,
          seconds
        },
        `created ${output}: ${meta.name}, ${formatBytes(meta.totalLength)} in ${meta.pieceCount} pieces of ${formatBytes(meta.pieceLength)}, info-hash ${meta.infoHashHex} (${seconds.toFixed(1)} s)`
      )
    }).pipe(Effect.provide(Hasher.layer({ workerStart: Heap.workerStart })))
).pipe(Command.withDescription("Create a .torrent from a file, a directory, or a raw disk image"))
