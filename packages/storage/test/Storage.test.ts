import * as NCP from "node:child_process"
import * as NFS from "node:fs"
import * as NPath from "node:path"
import { assert, describe, expect, it } from "@effect/vitest"
import { Effect, Either, FastCheck as fc } from "effect"
import { random, tempDir } from "@ezio/test-support/data"
import { Metainfo } from "@ezio/torrent"
import { FileIo, Layout, Storage, type StorageError } from "../src/index.js"

/** Writes every piece of `data` through `storage`, each piece split into blocks of `block` bytes. */
const writeAll = (storage: Storage.StorageService, data: Uint8Array, block: number) =>
  Effect.forEach(
    Array.from({ length: storage.layout.pieceCount }, (_, i) => i),
    (piece) => {
      const start = piece * storage.layout.pieceLength
      const size = Layout.pieceSize(storage.layout, piece)
      return Effect.forEach(
        Array.from({ length: Math.ceil(size / block) }, (_, j) => j),
        (j) => {
          const offset = j * block
          return storage.write(piece, offset, [
            data.subarray(start + offset, start + Math.min(size, offset + block))
          ])
        },
        { discard: true }
      )
    },
    { discard: true }
  )

const readAll = (storage: Storage.StorageService, block: number) =>
  Effect.gen(function* () {
    const out = new Uint8Array(storage.layout.totalLength)
    for (let piece = 0; piece < storage.layout.pieceCount; piece++) {
      const start = piece * storage.layout.pieceLength
      const size = Layout.pieceSize(storage.layout, piece)
      // Vectored: all of a piece's blocks in one request.
      const views: Array<Uint8Array> = []
      for (let offset = 0; offset < size; offset += block) {
        views.push(out.subarray(start + offset, start + Math.min(size, offset + block)))
      }
      yield* storage.read(piece, 0, views)
    }
    return out
  })

const openFds = () => NFS.readdirSync("/proc/self/fd").length

describe("Layout.spans", () => {
  it.prop(
    "maps every byte of a range to the file and offset a byte-by-byte walk gives",
    {
      lengths: fc.array(fc.oneof(fc.constant(0), fc.integer({ min: 1, max: 300 })), {
        minLength: 1,
        maxLength: 12
      }),
      pieceLength: fc.constantFrom(16, 64, 256),
      a: fc.nat(),
      b: fc.nat()
    },
    ({ a, b, lengths, pieceLength }) => {
      const layout = Layout.make({
        name: "t",
        pieceLength,
        files: lengths.map((length, i) => ({ path: [`f${i}`], length }))
      })
      const total = layout.totalLength
      if (total === 0) return Layout.spans(layout, 0, 0)?.length === 0
      const offset = a % total
      const length = b % (total - offset + 1)
      const spans = Layout.spans(layout, offset, length)!
      const walked: Array<[number, number]> = []
      for (const span of spans) {
        if (span.length === 0) return false
        for (let k = 0; k < span.length; k++) walked.push([span.file, span.fileOffset + k])
      }
      const expected: Array<[number, number]> = []
      for (let p = offset; p < offset + length; p++) {
        const file = layout.files.findIndex((f) => f.length > 0 && p >= f.offset && p < f.offset + f.length)
        expected.push([file, p - layout.files[file]!.offset])
      }
      return (
        JSON.stringify(walked) === JSON.stringify(expected) &&
        Layout.spans(layout, offset, total + 1) === undefined
      )
    }
  )
})

describe("directory target", () => {
  it.scoped(
    "spans many small files and zero-length files; a piece larger than a file and a file larger than a piece",
    () =>
      Effect.gen(function* () {
        const dir = yield* tempDir("ezio-storage-")
        const lengths = [3, 0, 9, 81, 0, 6561, 1, 0, 40000, 5]
        const layout = Layout.make({
          name: "multi",
          pieceLength: 1024,
          files: lengths.map((length, i) => ({
            path: ["multi", i % 2 === 0 ? "a" : "b", `file-${i}`],
            length
          }))
        })
        const data = random(layout.totalLength, 7)
        yield* Effect.scoped(
          Effect.gen(function* () {
            const storage = yield* Storage.makeDirectory({ layout, root: dir })
            yield* writeAll(storage, data, 256)
            const back = yield* readAll(storage, 16384)
            assert.deepStrictEqual(back, data)
          })
        )
        let at = 0
        for (const [i, length] of lengths.entries()) {
          const file = NPath.join(dir, "multi", i % 2 === 0 ? "a" : "b", `file-${i}`)
          assert.isTrue(NFS.existsSync(file), `file-${i} exists (length ${length})`)
          assert.deepStrictEqual(new Uint8Array(NFS.readFileSync(file)), data.subarray(at, at + length))
          at += length
        }
      })
  )

  it.scoped("files are sparse and full-length after the first write; preallocation is an option", () =>
    Effect.gen(function* () {
      const dir = yield* tempDir("ezio-storage-")
      const layout = Layout.make({
        name: "big",
        pieceLength: 65536,
        files: [{ path: ["big"], length: 8 * 1024 * 1024 }]
      })
      yield* Effect.scoped(
        Effect.gen(function* () {
          const storage = yield* Storage.makeDirectory({ layout, root: dir })
          yield* storage.write(3, 0, [new Uint8Array(16384).fill(1)])
        })
      )
      const sparse = NFS.statSync(NPath.join(dir, "big"))
      assert.strictEqual(sparse.size, 8 * 1024 * 1024)
      assert.isBelow(sparse.blocks * 512, 1024 * 1024)

      const dir2 = yield* tempDir("ezio-storage-")
      yield* Effect.scoped(
        Effect.gen(function* () {
          const storage = yield* Storage.makeDirectory({ layout, root: dir2, preallocate: true })
          yield* storage.write(3, 0, [new Uint8Array(16384).fill(1)])
        })
      )
      const full = NFS.statSync(NPath.join(dir2, "big"))
      assert.isAtLeast(full.blocks * 512, 8 * 1024 * 1024)
    })
  )

  it.scopedLive("keeps at most maxOpenFiles handles open, and closes them all with the scope", () =>
    Effect.gen(function* () {
      const dir = yield* tempDir("ezio-storage-")
      const layout = Layout.make({
        name: "many",
        pieceLength: 16,
        files: Array.from({ length: 40 }, (_, i) => ({ path: [`f${i}`], length: 16 }))
      })
      const data = random(layout.totalLength, 3)
      const before = openFds()
      yield* Effect.scoped(
        Effect.gen(function* () {
          const storage = yield* Storage.makeDirectory({ layout, root: dir, maxOpenFiles: 4 })
          yield* writeAll(storage, data, 16)
          // Let evicted handles finish closing (they sync first).
          yield* Effect.sleep("50 millis")
          assert.isAtMost(openFds() - before, 4)
          assert.deepStrictEqual(yield* readAll(storage, 16), data)
        })
      )
      yield* Effect.sleep("50 millis")
      assert.strictEqual(openFds(), before)
    })
  )

  it.scoped("read-only mode reports a missing file as NotFound, naming it and the piece", () =>
    Effect.gen(function* () {
      const dir = yield* tempDir("ezio-storage-")
      const layout = Layout.make({
        name: "ro",
        pieceLength: 16,
        files: [{ path: ["ro", "missing.bin"], length: 64 }]
      })
      const storage = yield* Storage.makeDirectory({ layout, root: dir, mode: "read" })
      const error = yield* Effect.flip(storage.read(2, 0, [new Uint8Array(16)]))
      assert.strictEqual(error.reason, "NotFound")
      assert.strictEqual(error.piece, 2)
      assert.include(error.message, "missing.bin")
      assert.include(error.message, "piece 2")
    })
  )

  it.scoped("reading past the end of a short file is a ShortRead, not zeros", () =>
    Effect.gen(function* () {
      const dir = yield* tempDir("ezio-storage-")
      NFS.writeFileSync(NPath.join(dir, "short"), new Uint8Array(20))
      const layout = Layout.make({ name: "short", pieceLength: 16, files: [{ path: ["short"], length: 64 }] })
      const storage = yield* Storage.makeDirectory({ layout, root: dir, mode: "read" })
      const error = yield* Effect.flip(storage.read(1, 0, [new Uint8Array(16)]))
      assert.strictEqual(error.reason, "ShortRead")
    })
  )

  it.scoped("requests outside the piece or torrent are refused", () =>
    Effect.gen(function* () {
      const dir = yield* tempDir("ezio-storage-")
      const layout = Layout.make({ name: "r", pieceLength: 16, files: [{ path: ["r"], length: 40 }] })
      const storage = yield* Storage.makeDirectory({ layout, root: dir })
      for (const [piece, offset, length] of [
        [0, 8, 16],
        [2, 0, 9],
        [3, 0, 1],
        [-1, 0, 1],
        [0, -1, 1]
      ] as const) {
        const error = yield* Effect.flip(storage.read(piece, offset, [new Uint8Array(length)]))
        assert.strictEqual(error.reason, "OutOfRange")
      }
    })
  )

  it.scoped("refuses paths that would leave the target directory", () =>
    Effect.gen(function* () {
      const dir = yield* tempDir("ezio-storage-")
      for (const path of [["..", "escape"], ["a", "..", "..", "b"], ["/etc/passwd"], [""], ["a\0b"]]) {
        const layout = Layout.make({ name: "bad", pieceLength: 16, files: [{ path, length: 16 }] })
        const error = yield* Effect.flip(Effect.scoped(Storage.makeDirectory({ layout, root: dir })))
        assert.strictEqual(error.reason, "UnsafePath", JSON.stringify(path))
      }
    })
  )

  it.scoped("durability 'piece' syncs a finished piece's files before it is reported", () =>
    Effect.gen(function* () {
      const dir = yield* tempDir("ezio-storage-")
      const synced: Array<number> = []
      const io: FileIo.FileIo = {
        ...FileIo.node,
        fdatasync: (fd, cb) => {
          synced.push(fd)
          FileIo.node.fdatasync(fd, cb)
        }
      }
      const layout = Layout.make({
        name: "d",
        pieceLength: 32,
        files: [
          { path: ["a"], length: 16 },
          { path: ["b"], length: 48 }
        ]
      })
      const storage = yield* Storage.makeDirectory({ layout, root: dir, durability: "piece", fileIo: io })
      yield* storage.write(0, 0, [random(32, 1)])
      assert.strictEqual(synced.length, 0)
      yield* storage.flushPiece(0)
      assert.strictEqual(synced.length, 2)
      yield* storage.flushPiece(0) // nothing new to sync
      assert.strictEqual(synced.length, 2)
    })
  )
})

describe("fault injection", () => {
  const layout = Layout.make({
    name: "f",
    pieceLength: 64,
    files: [
      { path: ["f", "one"], length: 100 },
      { path: ["f", "two"], length: 100 }
    ]
  })

  it.scoped("ENOSPC on a write is a NoSpace error naming the file and the piece", () =>
    Effect.gen(function* () {
      const dir = yield* tempDir("ezio-storage-")
      const io = FileIo.faulty((call, n) => (call === "writev" && n === 1 ? "ENOSPC" : undefined))
      const storage = yield* Storage.makeDirectory({ layout, root: dir, fileIo: io })
      yield* storage.write(0, 0, [random(64, 1)])
      const error = yield* Effect.flip(storage.write(1, 0, [random(64, 2)]))
      assert.strictEqual(error.reason, "NoSpace")
      assert.strictEqual(error.operation, "write")
      assert.strictEqual(error.piece, 1)
      assert.include(error.message, "no space left")
      assert.include(error.path, "one")
    })
  )

  it.scoped("EIO on a read is an Io error; nothing is swallowed", () =>
    Effect.gen(function* () {
      const dir = yield* tempDir("ezio-storage-")
      const io = FileIo.faulty((call, n) => (call === "readv" && n === 0 ? "EIO" : undefined))
      const storage = yield* Storage.makeDirectory({ layout, root: dir, fileIo: io })
      yield* storage.write(0, 0, [random(64, 1)])
      const error = yield* Effect.flip(storage.read(0, 0, [new Uint8Array(64)]))
      assert.strictEqual(error.reason, "Io")
      assert.include(error.message, "[EIO]")
    })
  )

  it.scoped("short transfers are resumed, and the bytes are right", () =>
    Effect.gen(function* () {
      const dir = yield* tempDir("ezio-storage-")
      const io = FileIo.faulty((call, n) =>
        (call === "readv" || call === "writev") && n % 2 === 0 ? "short" : undefined
      )
      const storage = yield* Storage.makeDirectory({ layout, root: dir, fileIo: io })
      const data = random(layout.totalLength, 9)
      yield* writeAll(storage, data, 48)
      assert.deepStrictEqual(yield* readAll(storage, 16), data)
    })
  )

  it.scoped("a failing open (EACCES) is a Permission error", () =>
    Effect.gen(function* () {
      const dir = yield* tempDir("ezio-storage-")
      const io = FileIo.faulty((call) => (call === "open" ? "EACCES" : undefined))
      const storage = yield* Storage.makeDirectory({ layout, root: dir, fileIo: io })
      const error = yield* Effect.flip(storage.write(0, 0, [random(64, 1)]))
      assert.strictEqual(error.reason, "Permission")
      assert.strictEqual(error.operation, "open")
    })
  )
})

describe("the callback write (write.unsafe)", () => {
  /** `write.unsafe` as an Effect, for the assertions. */
  const unsafeWrite = (
    storage: Storage.StorageService,
    piece: number,
    offset: number,
    buffers: ReadonlyArray<Uint8Array>
  ) =>
    Effect.async<void, StorageError.StorageError>((resume) =>
      storage.write.unsafe!(piece, offset, buffers, resume)
    )

  const writeAllUnsafe = (storage: Storage.StorageService, data: Uint8Array, block: number) =>
    Effect.forEach(
      Array.from({ length: storage.layout.pieceCount }, (_, i) => i),
      (piece) => {
        const start = piece * storage.layout.pieceLength
        const size = Layout.pieceSize(storage.layout, piece)
        const views: Array<Uint8Array> = []
        for (let offset = 0; offset < size; offset += block)
          views.push(data.subarray(start + offset, start + Math.min(size, offset + block)))
        return unsafeWrite(storage, piece, 0, views)
      },
      { discard: true }
    )

  const layout = Layout.make({
    name: "u",
    pieceLength: 256,
    files: [
      { path: ["u", "one"], length: 1000 },
      { path: ["u", "two"], length: 0 },
      { path: ["u", "three"], length: 3000 }
    ]
  })

  it.scoped(
    "a directory target writes the same bytes as `write`, files not yet open and pieces across files too",
    () =>
      Effect.gen(function* () {
        const dir = yield* tempDir("ezio-storage-")
        let writevs = 0
        const io = FileIo.faulty((call) => {
          if (call === "writev") writevs++
          return undefined
        })
        const storage = yield* Storage.makeDirectory({ layout, root: dir, fileIo: io })
        assert.isFunction(storage.write.unsafe)
        const data = random(layout.totalLength, 21)
        yield* writeAllUnsafe(storage, data, 64)
        assert.deepStrictEqual(yield* readAll(storage, 64), data)
        // One pwritev per file span: 16 pieces, piece 3 across both files.
        assert.strictEqual(writevs, layout.pieceCount + 1)
        assert.deepStrictEqual(
          new Uint8Array(NFS.readFileSync(NPath.join(dir, "u", "three"))),
          data.subarray(1000)
        )
      })
  )

  it.scoped("a raw target writes at the disk offsets; short transfers are resumed", () =>
    Effect.gen(function* () {
      const dir = yield* tempDir("ezio-storage-")
      const image = NPath.join(dir, "disk.img")
      const raw = Layout.make({
        name: "disk",
        pieceLength: 512,
        files: [
          { path: ["disk", "a"], length: 700, diskOffset: 0 },
          { path: ["disk", "b"], length: 900, diskOffset: 4096 }
        ]
      })
      NFS.writeFileSync(image, new Uint8Array(8192).fill(0xaa))
      const io = FileIo.faulty((call, n) => (call === "writev" && n % 2 === 0 ? "short" : undefined))
      const storage = yield* Storage.makeRaw({ layout: raw, path: image, fileIo: io })
      const data = random(raw.totalLength, 22)
      yield* writeAllUnsafe(storage, data, 100)
      const bytes = new Uint8Array(NFS.readFileSync(image))
      assert.deepStrictEqual(bytes.subarray(0, 700), data.subarray(0, 700))
      assert.deepStrictEqual(bytes.subarray(4096, 4096 + 900), data.subarray(700))
      assert.isTrue(
        bytes.subarray(700, 4096).every((b) => b === 0xaa),
        "the gap is untouched"
      )
    })
  )

  it.scoped("errors are those of `write`: out of range, ENOSPC naming the file and the piece", () =>
    Effect.gen(function* () {
      const dir = yield* tempDir("ezio-storage-")
      const io = FileIo.faulty((call, n) => (call === "writev" && n === 1 ? "ENOSPC" : undefined))
      const storage = yield* Storage.makeDirectory({ layout, root: dir, fileIo: io })
      const range = yield* Effect.flip(unsafeWrite(storage, 0, 200, [random(100, 1)]))
      assert.deepStrictEqual(range, yield* Effect.flip(storage.write(0, 200, [random(100, 1)])))
      assert.strictEqual(range.reason, "OutOfRange")
      assert.strictEqual(range.operation, "write")
      yield* unsafeWrite(storage, 0, 0, [random(256, 2)])
      const full = yield* Effect.flip(unsafeWrite(storage, 1, 0, [random(256, 3)]))
      assert.strictEqual(full.reason, "NoSpace")
      assert.strictEqual(full.piece, 1)
      assert.include(full.path, "one")
    })
  )

  it.effect(
    "a memory target, and a wrapper that replaces `write`, have none (their `write` is the one to run)",
    () =>
      Effect.gen(function* () {
        const memory = yield* Storage.makeMemory({ layout })
        assert.isUndefined(memory.write.unsafe)
        const wrapped: Storage.StorageService = { ...memory, write: (p, o, b) => memory.write(p, o, b) }
        assert.isUndefined(wrapped.write.unsafe)
      })
  )
})

describe("the callback read (read.unsafe)", () => {
  /** `read.unsafe` of a whole piece into fresh views, as an Effect, for the assertions. */
  const unsafeRead = (storage: Storage.StorageService, piece: number, offset: number, length: number) =>
    Effect.async<Uint8Array, StorageError.StorageError>((resume) => {
      const out = new Uint8Array(length)
      const views: Array<Uint8Array> = []
      for (let at = 0; at < length; at += 100) views.push(out.subarray(at, Math.min(length, at + 100)))
      storage.read.unsafe!(piece, offset, views, (exit) =>
        resume(exit._tag === "Success" ? Effect.succeed(out) : Effect.failCause(exit.cause))
      )
    })

  const layout = Layout.make({
    name: "r",
    pieceLength: 256,
    files: [
      { path: ["r", "one"], length: 1000 },
      { path: ["r", "two"], length: 3000 }
    ]
  })

  it.scoped(
    "a directory target reads what `read` reads: one preadv per open file span, else through `read`",
    () =>
      Effect.gen(function* () {
        const dir = yield* tempDir("ezio-storage-")
        let readvs = 0
        const io = FileIo.faulty((call) => {
          if (call === "readv") readvs++
          return undefined
        })
        const storage = yield* Storage.makeDirectory({ layout, root: dir, fileIo: io })
        assert.isFunction(storage.read.unsafe)
        const data = random(layout.totalLength, 31)
        yield* storage.write(0, 0, [data.subarray(0, 256)])
        for (let piece = 1; piece < layout.pieceCount; piece++)
          yield* storage.write(piece, 0, [
            data.subarray(piece * 256, Math.min(layout.totalLength, (piece + 1) * 256))
          ])
        readvs = 0
        for (let piece = 0; piece < layout.pieceCount; piece++) {
          const size = Layout.pieceSize(layout, piece)
          assert.deepStrictEqual(
            yield* unsafeRead(storage, piece, 0, size),
            data.subarray(piece * 256, piece * 256 + size)
          )
        }
        // 16 pieces, piece 3 across both files (two spans, through `read`).
        assert.strictEqual(readvs, layout.pieceCount + 1)
        assert.deepStrictEqual(
          yield* unsafeRead(storage, 5, 17, 200),
          data.subarray(5 * 256 + 17, 5 * 256 + 217)
        )
      })
  )

  it.scoped("a raw target reads at the disk offsets; errors are those of `read`", () =>
    Effect.gen(function* () {
      const dir = yield* tempDir("ezio-storage-")
      const image = NPath.join(dir, "disk.img")
      const raw = Layout.make({
        name: "disk",
        pieceLength: 512,
        files: [
          { path: ["disk", "a"], length: 700, diskOffset: 0 },
          { path: ["disk", "b"], length: 900, diskOffset: 4096 }
        ]
      })
      const bytes = random(8192, 32)
      NFS.writeFileSync(image, bytes)
      const io = FileIo.faulty((call, n) => (call === "readv" && n === 1 ? "EIO" : undefined))
      const storage = yield* Storage.makeRaw({ layout: raw, path: image, fileIo: io, mode: "read" })
      assert.isFunction(storage.read.unsafe)
      assert.deepStrictEqual(yield* unsafeRead(storage, 0, 0, 512), bytes.subarray(0, 512))
      const eio = yield* Effect.flip(unsafeRead(storage, 2, 0, 100))
      assert.strictEqual(eio.reason, "Io")
      assert.strictEqual(eio.operation, "read")
      assert.strictEqual(eio.piece, 2)
      assert.deepStrictEqual(yield* unsafeRead(storage, 2, 0, 100), bytes.subarray(4096 + 324, 4096 + 424))
      const range = yield* Effect.flip(unsafeRead(storage, 3, 0, 100))
      assert.deepStrictEqual(range, yield* Effect.flip(storage.read(3, 0, [new Uint8Array(100)])))
      assert.strictEqual(range.reason, "OutOfRange")
    })
  )

  it.effect("a memory target, and a wrapper that replaces `read`, have none", () =>
    Effect.gen(function* () {
      const memory = yield* Storage.makeMemory({ layout })
      assert.isUndefined(memory.read.unsafe)
      const wrapped: Storage.StorageService = { ...memory, read: (p, o, b) => memory.read(p, o, b) }
      assert.isUndefined(wrapped.read.unsafe)
    })
  )
})

describe("raw target", () => {
  // EZIO's format: files named by their hex disk offset; gaps are unused blocks.
  const rawLayout = Layout.make({
    name: "disk",
    pieceLength: 4096,
    files: [
      { path: ["disk", "0000000000000000"], length: 10000, diskOffset: 0 },
      { path: ["disk", "0000000000004000"], length: 5000, diskOffset: 0x4000 },
      { path: ["disk", "0000000000010000"], length: 20000, diskOffset: 0x10000 }
    ]
  })

  it.scoped("writes each file at its disk offset and never touches the gaps", () =>
    Effect.gen(function* () {
      const dir = yield* tempDir("ezio-storage-")
      const image = NPath.join(dir, "disk.img")
      const end = Layout.diskEnd(rawLayout)
      NFS.writeFileSync(image, new Uint8Array(end + 4096).fill(0xaa))
      const data = random(rawLayout.totalLength, 11)
      yield* Effect.scoped(
        Effect.gen(function* () {
          const storage = yield* Storage.makeRaw({ layout: rawLayout, path: image })
          // Blocks that straddle two extents land at both disk offsets.
          yield* writeAll(storage, data, 16384)
          assert.deepStrictEqual(yield* readAll(storage, 1000), data)
        })
      )
      const disk = new Uint8Array(NFS.readFileSync(image))
      let at = 0
      let covered = 0
      for (const file of rawLayout.files) {
        assert.deepStrictEqual(
          disk.subarray(file.diskOffset!, file.diskOffset! + file.length),
          data.subarray(at, at + file.length)
        )
        // The gap after this extent is untouched.
        const next = rawLayout.files.find((f) => f.diskOffset! > file.diskOffset!)?.diskOffset ?? disk.length
        assert.isTrue(disk.subarray(file.diskOffset! + file.length, next).every((b) => b === 0xaa))
        at += file.length
        covered += file.length
      }
      assert.strictEqual(covered, rawLayout.totalLength)
    })
  )

  it.scoped(
    "refuses a target smaller than the last extent's end, and grows an image file only when asked",
    () =>
      Effect.gen(function* () {
        const dir = yield* tempDir("ezio-storage-")
        const image = NPath.join(dir, "small.img")
        NFS.writeFileSync(image, new Uint8Array(4096))
        const error = yield* Effect.flip(Effect.scoped(Storage.makeRaw({ layout: rawLayout, path: image })))
        assert.strictEqual(error.reason, "TooSmall")
        assert.include(error.message, `${Layout.diskEnd(rawLayout)}`)
        assert.strictEqual(NFS.statSync(image).size, 4096)
        yield* Effect.scoped(Storage.makeRaw({ layout: rawLayout, path: image, grow: true }))
        assert.strictEqual(NFS.statSync(image).size, Layout.diskEnd(rawLayout))
        const fresh = NPath.join(dir, "fresh.img")
        yield* Effect.scoped(Storage.makeRaw({ layout: rawLayout, path: fresh, grow: true }))
        assert.strictEqual(NFS.statSync(fresh).size, Layout.diskEnd(rawLayout))
      })
  )

  // A real block device, when this machine lets us make one.
  const loop = (() => {
    try {
      if (process.getuid?.() !== 0) return "not root"
      if (!NFS.existsSync("/dev/loop-control")) return "no /dev/loop-control"
      NCP.execFileSync("losetup", ["--version"], { stdio: "ignore", timeout: 5000 })
      return undefined
    } catch (e) {
      return `losetup unavailable: ${String(e)}`
    }
  })()

  it.scopedLive.skipIf(loop !== undefined)(
    `on a loop device${loop === undefined ? "" : ` (skipped: ${loop})`}`,
    () =>
      Effect.gen(function* () {
        const dir = yield* tempDir("ezio-storage-")
        const image = NPath.join(dir, "loop.img")
        NFS.writeFileSync(image, new Uint8Array(256 * 1024).fill(0xaa))
        const device = yield* Effect.acquireRelease(
          Effect.try(() =>
            NCP.execFileSync("losetup", ["-f", "--show", image], { timeout: 10_000 }).toString().trim()
          ),
          (dev) => Effect.sync(() => NCP.execFileSync("losetup", ["-d", dev], { timeout: 10_000 }))
        )
        assert.match(device, /^\/dev\/loop\d+$/)
        const data = random(rawLayout.totalLength, 5)
        yield* Effect.scoped(
          Effect.gen(function* () {
            const storage = yield* Storage.makeRaw({ layout: rawLayout, path: device })
            yield* writeAll(storage, data, 16384)
            assert.deepStrictEqual(yield* readAll(storage, 16384), data)
          })
        )
        // A device is never truncated or grown.
        const tooBig = Layout.make({
          name: "x",
          pieceLength: 4096,
          files: [{ path: ["x"], length: 4096, diskOffset: 1024 * 1024 }]
        })
        const error = yield* Effect.flip(
          Effect.scoped(Storage.makeRaw({ layout: tooBig, path: device, grow: true }))
        )
        assert.strictEqual(error.reason, "TooSmall")
        assert.include(error.message, "device has 262144 bytes")
      })
  )
})

describe("memory target", () => {
  it.effect("round-trips, raw layouts included", () =>
    Effect.gen(function* () {
      const layout = Layout.make({
        name: "m",
        pieceLength: 64,
        files: [
          { path: ["a"], length: 100, diskOffset: 1000 },
          { path: ["b"], length: 50, diskOffset: 10 }
        ]
      })
      const storage = yield* Storage.makeMemory({ layout })
      const data = random(150, 2)
      yield* writeAll(storage, data, 16)
      assert.deepStrictEqual(yield* readAll(storage, 64), data)
      assert.deepStrictEqual(storage.bytes.subarray(10, 60), data.subarray(100, 150))
    })
  )
})

describe("Layout.fromMetainfo", () => {
  it("places directory torrents under their name and raw images at their hex offsets", () => {
    const multi = Either.getOrThrow(
      Metainfo.make({
        name: "set",
        pieceLength: 16384,
        pieces: new Uint8Array(20),
        files: [
          { path: ["a"], length: 10 },
          { path: ["b", "c"], length: 20 }
        ]
      })
    )
    const layout = Either.getOrThrow(Layout.fromMetainfo(multi))
    expect(layout.files.map((f) => [f.path.join("/"), f.offset])).toEqual([
      ["set/a", 0],
      ["set/b/c", 10]
    ])
    const raw = Either.getOrThrow(
      Metainfo.make({
        name: "sda1",
        pieceLength: 16384,
        pieces: new Uint8Array(20),
        files: [
          { path: ["0000000000001000"], length: 10 },
          { path: ["0000000000100000"], length: 20 }
        ]
      })
    )
    const rawLayout = Either.getOrThrow(Layout.fromMetainfo(raw, { raw: true }))
    expect(rawLayout.files.map((f) => [f.diskOffset, f.offset])).toEqual([
      [0x1000, 0],
      [0x100000, 10]
    ])
    expect(Layout.diskEnd(rawLayout)).toBe(0x100000 + 20)
    expect(Either.isLeft(Layout.fromMetainfo(multi, { raw: true }))).toBe(true)
  })
})
