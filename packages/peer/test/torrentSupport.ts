/** What the peer tests share to set up a torrent: random data and a v1 single-file torrent of it. */
import * as NCrypto from "node:crypto"
import { Metainfo } from "@ezio/torrent"
import { Either } from "effect"

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
