/**
 * What `sync` makes durable (file data and the directory entries of new files), and errors that
 * name what happened: EFBIG is not "no space left", a length no file can hold is not a crash.
 */
import * as NFS from "node:fs"
import * as NPath from "node:path"
import { assert, describe, it } from "@effect/vitest"
import { Effect } from "effect"
import { random, tempDir } from "@ezio/test-support/data"
import { FileIo, Layout, Storage } from "../src/index.js"

/** `FileIo.node` that records which paths had their descriptors fsynced / fdatasynced. */
const recording = () => {
  const paths = new Map<number, string>()
  const fsynced: Array<string> = []
  const datasynced: Array<string> = []
  const io: FileIo.FileIo = {
    ...FileIo.node,
    open: (path, flags, mode, callback) =>
      FileIo.node.open(path, flags, mode, (error, fd) => {
        if (error === null) paths.set(fd, path)
        callback(error, fd)
      }),
    fsync: (fd, callback) => {
      fsynced.push(paths.get(fd)!)
      FileIo.node.fsync(fd, callback)
    },
    fdatasync: (fd, callback) => {
      datasynced.push(paths.get(fd)!)
      FileIo.node.fdatasync(fd, callback)
    }
  }
  return { io, fsynced, datasynced }
}

describe("sync", () => {
  it.scoped("fdatasyncs written files and fsyncs the directories of the files it created, once", () =>
    Effect.gen(function* () {
      const dir = yield* tempDir("ezio-durable-")
      NFS.mkdirSync(NPath.join(dir, "t"))
      NFS.writeFileSync(NPath.join(dir, "t", "old"), new Uint8Array(64))
      const layout = Layout.make({
        name: "t",
        pieceLength: 64,
        files: [
          { path: ["t", "old"], length: 64 },
          { path: ["t", "sub", "new"], length: 64 }
        ]
      })
      const { io, fsynced, datasynced } = recording()
      const storage = yield* Storage.makeDirectory({ layout, root: dir, fileIo: io })
      yield* storage.write(0, 0, [random(64, 1)])
      yield* storage.sync
      // An existing file: its data, no directory.
      assert.deepStrictEqual(datasynced, [NPath.join(dir, "t", "old")])
      assert.deepStrictEqual(fsynced, [])
      yield* storage.write(1, 0, [random(64, 2)])
      yield* storage.sync
      assert.deepStrictEqual(datasynced.slice(1), [NPath.join(dir, "t", "sub", "new")])
      // The new file's directory, and the new directory's own parent, up to the root.
      assert.sameMembers(fsynced, [NPath.join(dir, "t", "sub"), NPath.join(dir, "t"), dir])
      yield* storage.sync
      assert.strictEqual(fsynced.length, 3, "directories are synced once")
    })
  )

  it.scoped("a raw image created by grow has its directory fsynced", () =>
    Effect.gen(function* () {
      const dir = yield* tempDir("ezio-durable-")
      const layout = Layout.make({
        name: "r",
        pieceLength: 64,
        files: [{ path: ["0000000000000100"], length: 64, diskOffset: 256 }]
      })
      const { io, fsynced, datasynced } = recording()
      const image = NPath.join(dir, "image")
      const storage = yield* Storage.makeRaw({ layout, path: image, grow: true, fileIo: io })
      yield* storage.write(0, 0, [random(64, 3)])
      yield* storage.sync
      assert.deepStrictEqual(datasynced, [image])
      assert.deepStrictEqual(fsynced, [dir])
    })
  )
})

describe("errno mapping", () => {
  it.scoped("EFBIG is TooLarge, not NoSpace", () =>
    Effect.gen(function* () {
      const dir = yield* tempDir("ezio-durable-")
      const layout = Layout.make({ name: "f", pieceLength: 64, files: [{ path: ["f"], length: 64 }] })
      const io = FileIo.faulty((call) => (call === "writev" ? "EFBIG" : undefined))
      const storage = yield* Storage.makeDirectory({ layout, root: dir, fileIo: io })
      const error = yield* Effect.flip(storage.write(0, 0, [random(64, 1)]))
      assert.strictEqual(error.reason, "TooLarge")
      assert.include(error.message, "larger than the file system allows")
      assert.notInclude(error.message, "no space")
    })
  )

  it.scoped("an image no file can hold (an extent ending at 2^53) fails to open, no RangeError", () =>
    Effect.gen(function* () {
      const dir = yield* tempDir("ezio-durable-")
      const layout = Layout.make({
        name: "r",
        pieceLength: 16384,
        files: [{ path: ["1ffffffffff000"], length: 4096, diskOffset: 2 ** 53 - 4096 }]
      })
      const error = yield* Effect.flip(
        Storage.makeRaw({ layout, path: NPath.join(dir, "image"), grow: true })
      )
      assert.strictEqual(error._tag, "StorageError")
      assert.strictEqual(error.reason, "OutOfRange")
    })
  )
})

describe("errors keep their errno", () => {
  it.scoped("a failing open on the first write names the piece and keeps the errno code", () =>
    Effect.gen(function* () {
      const dir = yield* tempDir("ezio-durable-")
      const layout = Layout.make({ name: "f", pieceLength: 64, files: [{ path: ["f"], length: 64 }] })
      const io = FileIo.faulty((call) => (call === "open" ? "EROFS" : undefined))
      const storage = yield* Storage.makeDirectory({ layout, root: dir, fileIo: io })
      const error = yield* Effect.flip(storage.write(0, 0, [random(64, 1)]))
      assert.strictEqual(error.reason, "ReadOnly")
      assert.strictEqual(error.piece, 0)
      assert.include(error.message, "read-only [EROFS]")
    })
  )
})
