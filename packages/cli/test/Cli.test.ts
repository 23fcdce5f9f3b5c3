/**
 * The `ezio` command as an admin runs it: a real process, its output and its exit codes.
 */
import * as NChild from "node:child_process"
import * as NCrypto from "node:crypto"
import * as NFS from "node:fs"
import * as NPath from "node:path"
import { assert, describe, it } from "@effect/vitest"
import { Effect } from "effect"
import { hasLibtorrent, libtorrentDownload } from "@ezio/test-support/clients"
import { oneLine as oneStderrLine, run as runEzio, start, tempDir, type Result } from "./harness.js"

const run = (args: ReadonlyArray<string>, timeoutMs = 60_000) => runEzio(args, { timeoutMs })

/** The one stderr line of an expected error: `ezio: ...`, no stack trace. */
const oneLine = (result: Result): string => oneStderrLine(result.stderr)

describe("ezio", () => {
  it.live(
    "create, info and verify a file; bad input gets a clear message and its documented exit code",
    () =>
      Effect.gen(function* () {
        const dir = yield* tempDir
        const file = NPath.join(dir, "disk.img")
        NFS.writeFileSync(file, NCrypto.randomBytes(3 * 1024 * 1024 + 5))
        const torrent = NPath.join(dir, "disk.torrent")
        const created = yield* run(["create", file, "-o", torrent, "--piece-length", "256KiB", "--json"])
        assert.strictEqual(created.code, 0, created.stderr)
        const made = JSON.parse(created.stdout)
        assert.strictEqual(made.pieces, 13)

        const info = yield* run(["info", torrent, "--json"])
        assert.strictEqual(info.code, 0, info.stderr)
        assert.strictEqual(JSON.parse(info.stdout).infoHash, made.infoHash)

        const verified = yield* run(["verify", torrent, file, "--json"])
        assert.strictEqual(verified.code, 0, verified.stderr)
        assert.deepInclude(JSON.parse(verified.stdout), { pieces: 13, good: 13, complete: true })

        // One flipped byte: one bad piece, exit code 6.
        const fd = NFS.openSync(file, "r+")
        NFS.writeSync(fd, Buffer.from([0xff ^ NFS.readFileSync(file)[300_000]!]), 0, 1, 300_000)
        NFS.closeSync(fd)
        const corrupt = yield* run(["verify", torrent, file])
        assert.strictEqual(corrupt.code, 6)
        assert.include(corrupt.stdout, "12/13 pieces good")

        const garbage = NPath.join(dir, "garbage.torrent")
        NFS.writeFileSync(garbage, "d8:announce5:x")
        const bad = yield* run(["info", garbage])
        assert.strictEqual(bad.code, 3)
        assert.include(bad.stderr, "ezio: invalid torrent: invalid bencode at byte")

        const missing = yield* run(["seed", torrent, NPath.join(dir, "nope.img"), "--port", "0"])
        assert.strictEqual(missing.code, 4)
        assert.include(missing.stderr, "does not exist")

        const usage = yield* run(["seed", "--no-such-option"])
        assert.strictEqual(usage.code, 2)
      }).pipe(Effect.scoped),
    120_000
  )

  it.live(
    "data errors print one line naming what and where, no stack, and exit 4",
    () =>
      Effect.gen(function* () {
        const dir = yield* tempDir
        const file = NPath.join(dir, "disk.img")
        NFS.writeFileSync(file, NCrypto.randomBytes(100_000))

        const missingTorrent = NPath.join(dir, "nope.torrent")
        const missing = yield* run(["info", missingTorrent])
        assert.strictEqual(missing.code, 4)
        const missingLine = oneLine(missing)
        assert.include(missingLine, missingTorrent)
        assert.include(missingLine, "no such file or directory")

        const unwritable = NPath.join(dir, "no-such-dir", "disk.torrent")
        const cannotWrite = yield* run(["create", file, "-o", unwritable])
        assert.strictEqual(cannotWrite.code, 4)
        assert.include(oneLine(cannotWrite), `cannot write ${unwritable}`)
      }).pipe(Effect.scoped),
    120_000
  )

  it.live(
    "bad option values print one line naming the option and exit 2; 1GB is 1GiB",
    () =>
      Effect.gen(function* () {
        const dir = yield* tempDir
        const file = NPath.join(dir, "disk.img")
        NFS.writeFileSync(file, NCrypto.randomBytes(100_000))
        const torrent = NPath.join(dir, "disk.torrent")

        const badPieceLength = yield* run(["create", file, "-o", torrent, "--piece-length", "12xyz"])
        assert.strictEqual(badPieceLength.code, 2)
        assert.include(oneLine(badPieceLength), '--piece-length: "12xyz"')
        assert.isFalse(NFS.existsSync(torrent))

        assert.strictEqual((yield* run(["create", file, "-o", torrent])).code, 0)
        const badPool = yield* run(["verify", torrent, file, "--pool-size", "lots"])
        assert.strictEqual(badPool.code, 2)
        assert.include(oneLine(badPool), '--pool-size: "lots"')
        const unusablePool = yield* run(["verify", torrent, file, "--pool-size", "1000"])
        assert.strictEqual(unusablePool.code, 2)
        assert.include(oneLine(unusablePool), '--pool-size: "1000"')

        // GB is GiB, as in the pool's own config: a whole number of 16 KiB blocks.
        const gigabyte = yield* run(["verify", torrent, file, "--pool-size", "1GB", "--json"])
        assert.strictEqual(gigabyte.code, 0, gigabyte.stderr)
        assert.deepInclude(JSON.parse(gigabyte.stdout), { complete: true })

        const badPeer = yield* run(["seed", torrent, file, "--port", "0", "--peer", "nowhere"])
        assert.strictEqual(badPeer.code, 2)
        assert.include(oneLine(badPeer), '--peer: "nowhere"')
      }).pipe(Effect.scoped),
    120_000
  )

  it("the installed command (package.json's bin) runs the same program", () => {
    const manifest = JSON.parse(
      NFS.readFileSync(NPath.resolve(import.meta.dirname, "../package.json"), "utf8")
    )
    const installed = NPath.resolve(import.meta.dirname, "..", manifest.bin.ezio)
    const version = NChild.execFileSync(process.execPath, [installed, "--version"], {
      timeout: 60_000,
      encoding: "utf8"
    })
    assert.strictEqual(version.trim(), manifest.version)
  }, 60_000)

  it.live.skipIf(!hasLibtorrent)(
    "seed prints a ready line, serves libtorrent, and stops cleanly on SIGTERM with exit code 0",
    () =>
      Effect.gen(function* () {
        const dir = yield* tempDir
        const file = NPath.join(dir, "disk.img")
        const data = NCrypto.randomBytes(8 * 1024 * 1024)
        NFS.writeFileSync(file, data)
        const torrent = NPath.join(dir, "disk.torrent")
        assert.strictEqual((yield* run(["create", file, "-o", torrent])).code, 0)
        const seeder = yield* start([
          "seed",
          torrent,
          file,
          "--bind",
          "127.0.0.1",
          "--port",
          "0",
          "--json",
          "--pool-size",
          "16MiB"
        ])
        const port = Number(String(seeder.ready.listen).split(":").pop())
        assert.strictEqual(seeder.ready.have, seeder.ready.pieces)
        const out = NPath.join(dir, "out")
        NFS.mkdirSync(out)
        const summary = yield* libtorrentDownload({ torrent, saveDir: out, peers: [port], timeoutMs: 60_000 })
        assert.isTrue(summary.done, JSON.stringify(summary))
        assert.strictEqual(Buffer.compare(NFS.readFileSync(NPath.join(out, "disk.img")), data), 0)
        seeder.child.kill("SIGTERM")
        const code = yield* seeder.exited.pipe(Effect.timeout("20 seconds"))
        assert.strictEqual(code, 0, seeder.errors())
        const stopped = seeder
          .output()
          .split("\n")
          .find((l) => l.includes('"event":"stopped"'))
        assert.isDefined(stopped)
        assert.isAtLeast(JSON.parse(stopped!).uploaded, data.length)
        assert.notInclude(seeder.errors(), "still in use")
      }).pipe(Effect.scoped),
    120_000
  )

  it.live(
    "download --exit fetches from an ezio seeder through its embedded tracker and writes a verified copy",
    () =>
      Effect.gen(function* () {
        const dir = yield* tempDir
        const image = NPath.join(dir, "sda1.img")
        const disk = Buffer.alloc(4 * 1024 * 1024)
        NCrypto.randomBytes(700_000).copy(disk, 65536)
        NCrypto.randomBytes(200_000).copy(disk, 3 * 1024 * 1024)
        NFS.writeFileSync(image, disk)
        const torrent = NPath.join(dir, "sda1.torrent")
        assert.strictEqual(
          (yield* run(["create", image, "--raw", "--granularity", "64KiB", "-o", torrent])).code,
          0
        )
        const seeder = yield* start([
          "seed",
          torrent,
          image,
          "--bind",
          "127.0.0.1",
          "--port",
          "0",
          "--serve-tracker",
          "--tracker-port",
          "0",
          "--json"
        ])
        const tracker = String(seeder.ready.tracker)
        const target = NPath.join(dir, "target.img")
        const downloaded = yield* run(
          [
            "download",
            torrent,
            target,
            "--bind",
            "127.0.0.1",
            "--port",
            "0",
            "--tracker",
            tracker,
            "--exit",
            "--json"
          ],
          90_000
        )
        assert.strictEqual(downloaded.code, 0, downloaded.stderr)
        assert.include(downloaded.stdout, '"event":"complete"')
        // The target grows to the end of the last used extent; the source's tail past it is zeros.
        const copy = NFS.readFileSync(target)
        assert.strictEqual(Buffer.compare(copy, disk.subarray(0, copy.length)), 0)
        assert.isTrue(disk.subarray(copy.length).every((b) => b === 0))
      }).pipe(Effect.scoped),
    120_000
  )
})
