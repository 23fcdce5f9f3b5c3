import { assert, describe, it, layer } from "@effect/vitest"
import { BufferPool } from "@ezio/pool"
import { random, sha1, tempDir } from "@ezio/test-support/data"
import { Effect, Layer } from "effect"
import { Bitfield, Check, FileIo, Hasher, Layout, Storage } from "../src/index.js"

const pieceHashes = (layout: Layout.Layout, data: Uint8Array) => {
  const out = new Uint8Array(layout.pieceCount * 20)
  for (let p = 0; p < layout.pieceCount; p++) {
    const start = p * layout.pieceLength
    out.set(sha1(data.subarray(start, start + Layout.pieceSize(layout, p))), p * 20)
  }
  return out
}

const Env = Layer.mergeAll(Hasher.layer({ threads: 2 }), BufferPool.layer({ capacity: 8 * 1024 * 1024 }))

layer(Env)("Check (the resume path)", (it) => {
  const layout = Layout.make({
    name: "img",
    pieceLength: 65536,
    files: [
      { path: ["img", "a.bin"], length: 200_000 },
      { path: ["img", "empty"], length: 0 },
      { path: ["img", "b.bin"], length: 300_001 }
    ]
  })
  const data = random(layout.totalLength, 5)
  const hashes = pieceHashes(layout, data)

  it.scoped("finds what a partly written target holds, resumes, and then has everything", () =>
    Effect.gen(function* () {
      const dir = yield* tempDir("ezio-check-")
      const storage = yield* Storage.makeDirectory({ layout, root: dir })
      // An interrupted deploy: even pieces written, piece 4 written wrong.
      for (let p = 0; p < layout.pieceCount; p += 2) {
        const start = p * layout.pieceLength
        const bytes = data.slice(start, start + Layout.pieceSize(layout, p))
        if (p === 4) bytes[100] = bytes[100]! ^ 0xff
        yield* storage.write(p, 0, [bytes])
      }
      const progress: Array<Check.Progress> = []
      const have = yield* Check.check(storage, {
        pieceHashes: hashes,
        onProgress: (p) => progress.push(p),
        chunkBlocks: 2
      })
      for (let p = 0; p < layout.pieceCount; p++) {
        assert.strictEqual(Bitfield.has(have, p), p % 2 === 0 && p !== 4, `piece ${p}`)
      }
      assert.strictEqual(progress.length, layout.pieceCount)
      assert.strictEqual(progress.at(-1)!.checked, layout.pieceCount)
      assert.strictEqual(progress.at(-1)!.bytesChecked, layout.totalLength)

      // Resume: write only what is missing, check again.
      for (let p = 0; p < layout.pieceCount; p++) {
        if (Bitfield.has(have, p)) continue
        const start = p * layout.pieceLength
        yield* storage.write(p, 0, [data.subarray(start, start + Layout.pieceSize(layout, p))])
      }
      const after = yield* Check.check(storage, { pieceHashes: hashes })
      assert.isTrue(Bitfield.isComplete(after))
      const pool = yield* BufferPool.BufferPool
      assert.strictEqual((yield* pool.stats).inUse, 0)
    })
  )

  it.scoped("a target with nothing yet has no pieces (missing files are not errors)", () =>
    Effect.gen(function* () {
      const dir = yield* tempDir("ezio-check-")
      const storage = yield* Storage.makeDirectory({ layout, root: dir, mode: "read" })
      const have = yield* Check.check(storage, { pieceHashes: hashes })
      assert.strictEqual(Bitfield.count(have), 0)
    })
  )

  it.scoped("an I/O error fails the check with the typed error instead of passing a piece", () =>
    Effect.gen(function* () {
      const dir = yield* tempDir("ezio-check-")
      yield* Effect.scoped(
        Effect.gen(function* () {
          const storage = yield* Storage.makeDirectory({ layout, root: dir })
          for (let p = 0; p < layout.pieceCount; p++) {
            const start = p * layout.pieceLength
            yield* storage.write(p, 0, [data.subarray(start, start + Layout.pieceSize(layout, p))])
          }
        })
      )
      const io = FileIo.faulty((call, n) => (call === "readv" && n === 3 ? "EIO" : undefined))
      const storage = yield* Storage.makeDirectory({ layout, root: dir, mode: "read", fileIo: io })
      const error = yield* Effect.flip(Check.check(storage, { pieceHashes: hashes, concurrency: 1 }))
      assert.strictEqual(error._tag, "StorageError")
      assert.isTrue(error._tag === "StorageError" && error.reason === "Io")
      const pool = yield* BufferPool.BufferPool
      assert.strictEqual((yield* pool.stats).inUse, 0)
    })
  )
})

describe("Bitfield", () => {
  it("uses BitTorrent's bit order", () => {
    const b = Bitfield.make(10)
    Bitfield.set(b, 0)
    Bitfield.set(b, 9)
    assert.deepStrictEqual([...b.bytes], [0x80, 0x40])
    assert.strictEqual(Bitfield.count(b), 2)
    Bitfield.set(b, 0, false)
    assert.isFalse(Bitfield.has(b, 0))
  })
})
