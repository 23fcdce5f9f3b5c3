import { describe, expect, it } from "@effect/vitest"
import { Effect, Either, Exit, Fiber } from "effect"
import { hex, random, sha1, tempDir } from "@ezio/test-support/data"
import { Metainfo, RawImage } from "@ezio/torrent"
import { Create, Hasher } from "../src/index.js"
import * as NChild from "node:child_process"
import * as NFS from "node:fs"
import * as NPath from "node:path"

const python = "/usr/bin/python3"
const hasLibtorrent =
  NFS.existsSync(python) &&
  NChild.spawnSync(python, ["-c", "import libtorrent"], { timeout: 20_000 }).status === 0
const hasMktorrent = NChild.spawnSync("mktorrent", ["-h"], { timeout: 10_000 }).error === undefined
const partclone = ["/usr/sbin/partclone.ext4", "/sbin/partclone.ext4"].find((p) => NFS.existsSync(p))
const mkfs = ["/usr/sbin/mkfs.ext4", "/sbin/mkfs.ext4"].find((p) => NFS.existsSync(p))

const tmp = tempDir("ezio-create-")
const sha1Hex = (b: Uint8Array) => hex(sha1(b))

/** A file and a directory with a subdirectory, for the interop tests. */
const writeSamples = (dir: string) => {
  NFS.mkdirSync(NPath.join(dir, "set", "sub"), { recursive: true })
  NFS.writeFileSync(NPath.join(dir, "set", "one"), random(40000, 1))
  NFS.writeFileSync(NPath.join(dir, "set", "sub", "two"), random(90000, 2))
  NFS.writeFileSync(NPath.join(dir, "file.bin"), random(300000, 3))
}

/** libtorrent's view of a .torrent: info-hash, piece count and files, or its error. */
const libtorrentInfo = (torrentPath: string) => {
  const script = `
import sys, json, libtorrent as lt
ti = lt.torrent_info(sys.argv[1])
fs = ti.files()
print(json.dumps({"hash": str(ti.info_hashes().v1), "pieces": ti.num_pieces(), "piece_length": ti.piece_length(),
  "files": [[fs.file_path(i), fs.file_size(i)] for i in range(fs.num_files())]}))
`
  const result = NChild.spawnSync(python, ["-c", script, torrentPath], { timeout: 30_000, encoding: "utf8" })
  if (result.status !== 0) throw new Error(`libtorrent refused ${torrentPath}: ${result.stderr}`)
  return JSON.parse(result.stdout) as {
    hash: string
    pieces: number
    piece_length: number
    files: Array<[string, number]>
  }
}

const run = <A, E>(effect: Effect.Effect<A, E, Hasher.Hasher>) =>
  Effect.provide(effect, Hasher.layer({ threads: 2 }))

describe("Create", () => {
  it("chooses piece lengths like mature tools", () => {
    expect(Create.autoPieceLength(1)).toBe(16384)
    expect(Create.autoPieceLength(1024 ** 3)).toBe(1024 * 1024)
    expect(Create.autoPieceLength(4 * 1024 ** 3)).toBe(4 * 1024 * 1024)
    expect(Create.autoPieceLength(10 * 1024 ** 4)).toBe(16 * 1024 * 1024)
  })

  it.scopedLive("hashes a file in pieces with the workers and reports progress", () =>
    Effect.gen(function* () {
      const dir = yield* tmp
      const data = random(5 * 1024 * 1024 + 12345, 7)
      NFS.writeFileSync(NPath.join(dir, "disk.img"), data)
      const progress: Array<number> = []
      const meta = yield* run(
        Create.fromPath(NPath.join(dir, "disk.img"), {
          pieceLength: 256 * 1024,
          trackers: [["http://127.0.0.1:6969/announce"]],
          creationDate: null,
          onProgress: (p) => progress.push(p.hashedBytes)
        })
      )
      expect(meta.name).toBe("disk.img")
      expect(meta.multiFile).toBe(false)
      expect(meta.pieceCount).toBe(Math.ceil(data.length / (256 * 1024)))
      for (let i = 0; i < meta.pieceCount; i++)
        expect(Buffer.from(Metainfo.pieceHash(meta, i)).toString("hex")).toBe(
          sha1Hex(data.subarray(i * 262144, (i + 1) * 262144))
        )
      expect(progress[progress.length - 1]).toBe(data.length)
      expect(meta.createdBy).toBe("ezio/0.1.0")
      expect(meta.creationDate).toBeUndefined()
    })
  )

  it.scopedLive("makes a directory torrent in byte order of paths, spanning files inside pieces", () =>
    Effect.gen(function* () {
      const dir = yield* tmp
      const root = NPath.join(dir, "set")
      NFS.mkdirSync(NPath.join(root, "b", "deep"), { recursive: true })
      NFS.mkdirSync(NPath.join(root, "empty-dir"))
      const files: Array<[string, Uint8Array]> = [
        ["B", random(1000, 1)],
        ["a", random(70000, 2)],
        ["b/deep/z", random(0, 3)],
        ["b/x", random(50000, 4)]
      ]
      for (const [p, d] of files) NFS.writeFileSync(NPath.join(root, p), d)
      const meta = yield* run(Create.fromPath(root, { pieceLength: 16384 }))
      expect(meta.files.map((f) => f.path.join("/"))).toEqual(["B", "a", "b/deep/z", "b/x"])
      const all = Buffer.concat(files.map(([, d]) => d))
      for (let i = 0; i < meta.pieceCount; i++)
        expect(Buffer.from(Metainfo.pieceHash(meta, i)).toString("hex")).toBe(
          sha1Hex(all.subarray(i * 16384, (i + 1) * 16384))
        )
    })
  )

  it.scopedLive("fails with typed errors for missing, empty and bad input", () =>
    Effect.gen(function* () {
      const dir = yield* tmp
      const missing = yield* Effect.flip(run(Create.fromPath(NPath.join(dir, "nope"))))
      expect(missing._tag === "CreateError" && missing.reason).toBe("NotFound")
      NFS.writeFileSync(NPath.join(dir, "empty"), "")
      const empty = yield* Effect.flip(run(Create.fromPath(NPath.join(dir, "empty"))))
      expect(empty._tag === "CreateError" && empty.reason).toBe("Empty")
      NFS.writeFileSync(NPath.join(dir, "one"), "x")
      const bad = yield* Effect.flip(run(Create.fromPath(NPath.join(dir, "one"), { pieceLength: 1000 })))
      expect(bad._tag === "CreateError" && bad.reason).toBe("InvalidOption")
      for (const pieceLength of [512 * 1024 * 1024, 2 ** 32 + 2 ** 31]) {
        const big = yield* Effect.flip(run(Create.fromPath(NPath.join(dir, "one"), { pieceLength })))
        expect(big._tag === "CreateError" && big.reason).toBe("InvalidOption")
        expect(big.message).toContain(
          `piece length ${pieceLength} is not a power of two from 16 KiB to 256 MiB`
        )
      }
      const zeros = NPath.join(dir, "zeros.img")
      NFS.writeFileSync(zeros, Buffer.alloc(1 << 20))
      const allZero = yield* Effect.flip(run(Create.fromRawImage(zeros)))
      expect(allZero.message).toContain("all zeros")
    })
  )

  it.scopedLive("stops cleanly when interrupted", () =>
    Effect.gen(function* () {
      const dir = yield* tmp
      const file = NPath.join(dir, "big")
      NFS.writeFileSync(file, random(64 * 1024 * 1024, 9))
      let seen = 0
      const fiber = yield* Effect.fork(
        run(Create.fromPath(file, { pieceLength: 16384, onProgress: (p) => (seen = p.hashedBytes) }))
      )
      yield* Effect.sleep("30 millis")
      const exit = yield* Fiber.interrupt(fiber)
      expect(Exit.isInterrupted(exit) || Exit.isSuccess(exit)).toBe(true)
      expect(seen).toBeLessThanOrEqual(64 * 1024 * 1024)
    })
  )

  it.scopedLive("makes EZIO raw-image torrents that skip all-zero space", () =>
    Effect.gen(function* () {
      const dir = yield* tmp
      const image = NPath.join(dir, "sda1.img")
      const size = 8 * 1024 * 1024
      const data = Buffer.alloc(size)
      data.set(random(100_000, 5), 0)
      data.set(random(5000, 6), 3 * 1024 * 1024 + 4096)
      data.set(random(70_000, 7), size - 70_000)
      NFS.writeFileSync(image, data)
      const meta = yield* run(Create.fromRawImage(image, { granularity: 64 * 1024, pieceLength: 16384 }))
      expect(meta.name).toBe("sda1")
      const raw = Either.getOrThrow(RawImage.fromMetainfo(meta))
      expect(raw.extents.map((e) => [e.diskOffset, e.length])).toEqual([
        [0, 128 * 1024],
        [3 * 1024 * 1024, 64 * 1024],
        [size - 128 * 1024, 128 * 1024]
      ])
      expect(raw.width).toBe(16)
      const used = Buffer.concat(raw.extents.map((e) => data.subarray(e.diskOffset, e.diskOffset + e.length)))
      for (let i = 0; i < meta.pieceCount; i++)
        expect(Buffer.from(Metainfo.pieceHash(meta, i)).toString("hex")).toBe(
          sha1Hex(used.subarray(i * 16384, (i + 1) * 16384))
        )
    })
  )

  it.scopedLive.skipIf(!partclone || !mkfs)(
    "uses partclone's torrent.info from a real ext4 image",
    () =>
      Effect.gen(function* () {
        const dir = yield* tmp
        const content = NPath.join(dir, "content")
        NFS.mkdirSync(content)
        NFS.writeFileSync(NPath.join(content, "a.bin"), random(3 * 1024 * 1024, 11))
        NFS.writeFileSync(NPath.join(content, "b.bin"), random(20 * 1024 * 1024, 12))
        const image = NPath.join(dir, "part.img")
        NFS.writeFileSync(image, "")
        NFS.truncateSync(image, 48 * 1024 * 1024)
        const mk = NChild.spawnSync(mkfs!, ["-q", "-F", "-d", content, image], {
          timeout: 60_000,
          encoding: "utf8"
        })
        expect(mk.status, mk.stderr).toBe(0)
        const out = NPath.join(dir, "out")
        NFS.mkdirSync(out)
        const pc = NChild.spawnSync(
          partclone!,
          [
            "-c",
            "-t",
            "-s",
            image,
            "-O",
            `${out}/`,
            "--buffer_size",
            "16777216",
            "-L",
            NPath.join(dir, "log")
          ],
          { timeout: 120_000, encoding: "utf8" }
        )
        expect(pc.status, pc.stderr).toBe(0)
        const infoText = NFS.readFileSync(NPath.join(out, "torrent.info"), "utf8")
        const meta = yield* run(Create.fromRawImage(image, { partcloneInfo: infoText, name: "sda1" }))
        const raw = Either.getOrThrow(RawImage.fromMetainfo(meta))
        expect(raw.width).toBe(32)
        expect(meta.pieceLength).toBe(16 * 1024 * 1024)
        // partclone's hashes are those of 16 MiB pieces over the used extents, read from the image.
        const disk = NFS.readFileSync(image)
        const used = Buffer.concat(
          raw.extents.map((e) => disk.subarray(e.diskOffset, e.diskOffset + e.length))
        )
        expect(used.length).toBeLessThan(disk.length)
        for (let i = 0; i < meta.pieceCount; i++)
          expect(Buffer.from(Metainfo.pieceHash(meta, i)).toString("hex")).toBe(
            sha1Hex(used.subarray(i * meta.pieceLength, (i + 1) * meta.pieceLength))
          )
      }),
    120_000
  )

  it.scopedLive.skipIf(!hasLibtorrent)(
    "libtorrent loads every kind of torrent we make, with the same info-hash",
    () =>
      Effect.gen(function* () {
        const dir = yield* tmp
        writeSamples(dir)
        const image = Buffer.alloc(2 * 1024 * 1024)
        image.set(random(50000, 4), 1024 * 1024)
        NFS.writeFileSync(NPath.join(dir, "disk.img"), image)
        const made = [
          yield* run(
            Create.fromPath(NPath.join(dir, "file.bin"), { trackers: [["http://127.0.0.1:1/announce"]] })
          ),
          yield* run(
            Create.fromPath(NPath.join(dir, "set"), {
              trackers: [["http://a/announce"], ["udp://b:1"]],
              private: true
            })
          ),
          yield* run(Create.fromRawImage(NPath.join(dir, "disk.img"), { granularity: 4096 }))
        ]
        for (const [i, meta] of made.entries()) {
          const path = NPath.join(dir, `made-${i}.torrent`)
          NFS.writeFileSync(path, Metainfo.encode(meta))
          const lt = libtorrentInfo(path)
          expect(lt.hash).toBe(meta.infoHashHex)
          expect(lt.pieces).toBe(meta.pieceCount)
          expect(lt.files.map(([, size]) => size)).toEqual(meta.files.map((f) => f.length))
        }
      }),
    60_000
  )

  it.scopedLive.skipIf(!hasLibtorrent || !hasMktorrent)(
    "loads torrents made by libtorrent and mktorrent with their info-hash",
    () =>
      Effect.gen(function* () {
        const dir = yield* tmp
        writeSamples(dir)
        const cases: Array<string> = []
        for (const source of ["file.bin", "set"]) {
          const out = NPath.join(dir, `mk-${source}.torrent`)
          const mk = NChild.spawnSync(
            "mktorrent",
            ["-a", "http://127.0.0.1:6969/announce", "-l", "15", "-o", out, NPath.join(dir, source)],
            { timeout: 30_000, encoding: "utf8" }
          )
          expect(mk.status, mk.stderr).toBe(0)
          cases.push(out)
          const ltOut = NPath.join(dir, `lt-${source}.torrent`)
          const script = `
import sys, libtorrent as lt, os
fs = lt.file_storage()
lt.add_files(fs, sys.argv[1])
t = lt.create_torrent(fs)
t.add_tracker("http://127.0.0.1:6969/announce")
lt.set_piece_hashes(t, os.path.dirname(sys.argv[1]))
open(sys.argv[2], "wb").write(lt.bencode(t.generate()))
`
          if (hasLibtorrent) {
            const r = NChild.spawnSync(python, ["-c", script, NPath.join(dir, source), ltOut], {
              timeout: 30_000,
              encoding: "utf8"
            })
            expect(r.status, r.stderr).toBe(0)
            cases.push(ltOut)
          }
        }
        for (const path of cases) {
          const meta = Either.getOrThrow(Metainfo.decode(NFS.readFileSync(path)))
          expect(meta.infoHashHex).toBe(libtorrentInfo(path).hash)
        }
      }),
    60_000
  )
})
