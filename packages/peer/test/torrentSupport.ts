/** What the peer tests share to set up a torrent: random data and a v1 single-file torrent of it. */
import * as NCrypto from "node:crypto"
import * as NFS from "node:fs"
import * as Net from "node:net"
import * as NOS from "node:os"
import * as NPath from "node:path"
import { Bitfield, Create } from "@ezio/storage"
import { Metainfo } from "@ezio/torrent"
import { Effect, Either, Schedule } from "effect"

export const random = (n: number) => new Uint8Array(NCrypto.randomBytes(n))

/** A single-file v1 torrent of `data` (SHA-1 of each piece), named `name`. */
export const makeTorrent = (data: Uint8Array, pieceLength: number, name = "disk.img") => {
  const pieces = new Uint8Array(Math.ceil(data.length / pieceLength) * 20)
  for (let i = 0; i * pieceLength < data.length; i++)
    pieces.set(
      NCrypto.createHash("sha1")
        .update(data.subarray(i * pieceLength, (i + 1) * pieceLength))
        .digest(),
      i * 20
    )
  return Either.getOrThrow(
    Metainfo.make({ name, pieceLength, pieces, files: [{ path: [name], length: data.length }], single: true })
  )
}

/** A temporary directory named `prefix…`, removed with the scope. */
export const tempDir = (prefix: string) =>
  Effect.acquireRelease(
    Effect.sync(() => NFS.mkdtempSync(NPath.join(NOS.tmpdir(), prefix))),
    (dir) => Effect.sync(() => NFS.rmSync(dir, { recursive: true, force: true }))
  )

/** `size` random bytes in `dir/src/disk.img` and a torrent of them (made by Create) in `dir/disk.torrent`. */
export const singleFileOnDisk = (dir: string, size: number, pieceLength: number) =>
  Effect.gen(function* () {
    NFS.mkdirSync(NPath.join(dir, "src"), { recursive: true })
    const file = NPath.join(dir, "src", "disk.img")
    const data = NCrypto.randomBytes(size)
    NFS.writeFileSync(file, data)
    const meta = yield* Create.fromPath(file, { pieceLength })
    const torrent = NPath.join(dir, "disk.torrent")
    NFS.writeFileSync(torrent, Metainfo.encode(meta))
    return { file, data, meta, torrent }
  })

/** Every piece of `meta`. */
export const full = (meta: Metainfo.Metainfo) => {
  const have = Bitfield.make(meta.pieceCount)
  for (let i = 0; i < meta.pieceCount; i++) Bitfield.set(have, i)
  return have
}

/** Succeeds once 127.0.0.1:`port` takes connections (tried every 100 ms, for 30 s at most). */
export const listening = (port: number) =>
  Effect.async<void, Error>((resume) => {
    const probe = Net.connect(port, "127.0.0.1", () => {
      probe.destroy()
      resume(Effect.void)
    })
    probe.on("error", (error) => resume(Effect.fail(error)))
  }).pipe(Effect.retry(Schedule.spaced("100 millis").pipe(Schedule.upTo("30 seconds"))))
