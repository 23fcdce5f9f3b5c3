// `ezio info`: what a .torrent holds.
import * as Command from "@effect/cli/Command"
import { RawImage } from "@ezio/torrent"
import * as Console from "effect/Console"
import * as Effect from "effect/Effect"
import * as Either from "effect/Either"
import { json, readTorrent, torrentArg } from "../common.js"
import { formatBytes } from "../format.js"
import * as Magnet from "../magnet.js"

export const info = Command.make("info", { torrent: torrentArg, json }, ({ json, torrent }) =>
  Effect.gen(function* () {
    if (Magnet.isMagnet(torrent)) return yield* magnetInfo(torrent, json)
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
).pipe(Command.withDescription("Show what a .torrent (or a magnet link) holds"))

// A magnet link says only where the torrent is: the rest comes from peers (BEP 9).
const magnetInfo = (torrent: string, json: boolean) =>
  Effect.gen(function* () {
    const magnet = yield* Magnet.parse(torrent)
    const hex = (bytes: Uint8Array | undefined) =>
      bytes === undefined ? undefined : Buffer.from(bytes).toString("hex")
    const note = "the size, pieces and files come from peers: ezio download fetches them (BEP 9)"
    if (json)
      return yield* Console.log(
        JSON.stringify({
          magnet: true,
          infoHash: hex(magnet.infoHash),
          infoHashV2: hex(magnet.infoHashV2),
          name: magnet.name,
          trackers: magnet.trackers,
          peers: magnet.peers,
          needsPeers: true
        })
      )
    yield* Console.log(
      [
        ...(magnet.name !== undefined ? [`name:         ${magnet.name}`] : []),
        `info-hash:    ${hex(magnet.infoHash) ?? "none (v2 only)"}`,
        ...magnet.trackers.map((url) => `tracker:      ${url}`),
        ...magnet.peers.map((peer) => `peer:         ${peer}`),
        `magnet link:  ${note}`
      ].join("\n")
    )
  })
