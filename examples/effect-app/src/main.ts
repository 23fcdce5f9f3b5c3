/**
 * An Effect app that takes ezio's disk stack from npm, as any app would: one BufferPool, a
 * Storage over a directory and the DiskIo engine with its hashing workers, provided as layers.
 * It writes a file, reads it back through DiskIo and checks the bytes and a piece hash against
 * node:crypto, then prints one line. Run from plain `node`, on the packages' compiled JavaScript.
 */
import * as NCrypto from "node:crypto"
import * as NFS from "node:fs"
import * as NOS from "node:os"
import * as NPath from "node:path"
import { DiskIo } from "@ezio/disk-io"
import { BufferPool } from "@ezio/pool"
import { Hasher, Layout, Storage } from "@ezio/storage"
import { Effect, Layer } from "effect"

const PIECE = 256 * 1024
const data = NCrypto.randomBytes(3 * PIECE + 12_345)

const program = Effect.gen(function* () {
  const dir = yield* Effect.acquireRelease(
    Effect.sync(() => NFS.mkdtempSync(NPath.join(NOS.tmpdir(), "ezio-effect-app-"))),
    (dir) => Effect.sync(() => NFS.rmSync(dir, { recursive: true, force: true }))
  )
  NFS.writeFileSync(NPath.join(dir, "disk.img"), data)
  const layout = Layout.make({
    name: "disk.img",
    pieceLength: PIECE,
    files: [{ path: ["disk.img"], length: data.length }]
  })

  const disk = yield* DiskIo.DiskIo
  const storage = yield* Storage.makeDirectory({ layout, root: dir, mode: "read" })
  const torrent = yield* disk.addTorrent(storage)

  // Every piece, read through the engine into pool blocks, must be the file's bytes.
  const copy = Buffer.alloc(data.length)
  for (let piece = 0; piece < layout.pieceCount; piece++) {
    const length = Math.min(PIECE, data.length - piece * PIECE)
    const read = yield* Effect.scoped(
      Effect.map(disk.read(torrent, piece, 0, length), (read) => Buffer.concat(read.views))
    )
    read.copy(copy, piece * PIECE)
  }
  if (!copy.equals(data)) return yield* Effect.die(new Error("read back different bytes"))

  // The hash runs on a worker thread started from the installed package's own worker file.
  const { sha1 } = yield* disk.hash(torrent, 1)
  const expected = NCrypto.createHash("sha1")
    .update(data.subarray(PIECE, 2 * PIECE))
    .digest()
  if (!expected.equals(sha1)) return yield* Effect.die(new Error("piece 1 hashed differently"))

  yield* disk.removeTorrent(torrent)
  console.log(
    `read ${data.length} bytes in ${layout.pieceCount} pieces through DiskIo; piece 1 sha1 ${expected.toString("hex")}`
  )
}).pipe(Effect.scoped)

const DiskLive = DiskIo.layer().pipe(
  Layer.provideMerge(
    Layer.merge(BufferPool.layer({ capacity: 4 * 1024 * 1024 }), Hasher.layer({ threads: 1 }))
  )
)

Effect.runPromise(Effect.provide(program, DiskLive)).catch((error) => {
  console.error(error)
  process.exit(1)
})
