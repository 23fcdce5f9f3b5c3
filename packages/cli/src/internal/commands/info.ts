// `ezio info`: what a .torrent holds.
import { Command } from "@effect/cli"
import { RawImage } from "@ezio/torrent"
import * as Console from "effect/Console"
import * as Effect from "effect/Effect"
import * as Either from "effect/Either"
import { json, readTorrent, torrentArg } from "../common.js"
import { formatBytes } from "../format.js"

export const info = Command.make("info", { torrent: torrentArg, json }, ({ json, torrent }) =>
  Effect.gen(function* () {
    const meta = yield* readTorrent(torrent)
    const raw = RawImage.fromMetainfo(meta)
    if (json) {
      return yield* Console.log(
        JSON.stringify({
          name: meta.name,
          infoHash: meta.infoHashHex,
          version: meta.version,
          pieceLength: meta.pieceLength,
          pieces: meta.pieceCount,
          totalLength: meta.totalLength,
          private: meta.private,
          trackers: meta.trackers,
          comment: meta.comment,
          createdBy: meta.createdBy,
          creationDate: meta.creationDate,
          rawImage: Either.isRight(raw)
            ? { extents: raw.right.extents.length, diskEnd: raw.right.diskEnd }
            : null,
          files: meta.files.map((f) => ({ path: f.path.join("/"), length: f.length }))
        })
      )
    }
    const lines = [
      `name:         ${meta.name}`,
      `info-hash:    ${meta.infoHashHex}${meta.version === "hybrid" ? " (hybrid v1+v2; used as v1)" : ""}`,
      `size:         ${formatBytes(meta.totalLength)} (${meta.totalLength} bytes)`,
      `pieces:       ${meta.pieceCount} x ${formatBytes(meta.pieceLength)}`,
      `private:      ${meta.private ? "yes" : "no"}`,
      ...(meta.comment !== undefined ? [`comment:      ${meta.comment}`] : []),
      ...(meta.createdBy !== undefined ? [`created by:   ${meta.createdBy}`] : []),
      ...(meta.creationDate !== undefined
        ? [`created:      ${new Date(meta.creationDate * 1000).toISOString()}`]
        : []),
      ...meta.trackers.map((tier, i) => `tracker tier ${i}: ${tier.join(" ")}`)
    ]
    if (Either.isRight(raw))
      lines.push(
        `raw image:    ${raw.right.extents.length} used extents; the target must hold ${formatBytes(raw.right.diskEnd)}`
      )
    else {
      lines.push(`files:        ${meta.files.length}`)
      for (const f of meta.files.slice(0, 20))
        lines.push(`  ${formatBytes(f.length).padStart(10)}  ${f.path.join("/")}`)
      if (meta.files.length > 20) lines.push(`  ... and ${meta.files.length - 20} more`)
    }
    yield* Console.log(lines.join("\n"))
  })
).pipe(Command.withDescription("Show what a .torrent holds"))
