/**
 * Input checks: bad option values exit 2 and bad torrents exit 3, each with one line and no
 * stack; a single-file torrent goes onto a block device from its offset 0 (checked large enough).
 */
import * as NChild from "node:child_process"
import * as NCrypto from "node:crypto"
import * as NFS from "node:fs"
import * as NPath from "node:path"
import { assert, describe, it } from "@effect/vitest"
import { Bencode } from "@ezio/torrent"
import { Effect } from "effect"
import { isRoot, oneLine, run, start, tempDir } from "./harness.js"

const t = Bencode.text

describe("input checks", () => {
  it.live(
    "option values out of range exit 2 with one line naming the option",
    () =>
      Effect.gen(function* () {
        const dir = yield* tempDir
        const file = NPath.join(dir, "disk.img")
        NFS.writeFileSync(file, NCrypto.randomBytes(100_000))
        const torrent = NPath.join(dir, "disk.torrent")
        assert.strictEqual((yield* run(["create", file, "-o", torrent])).code, 0)
        const cases: ReadonlyArray<readonly [ReadonlyArray<string>, string]> = [
          [["seed", torrent, file, "--port", "70000"], "port = 70000"],
          [["verify", torrent, file, "--pool-size", "1KiB"], '--pool-size: "1KiB"'],
          [["seed", torrent, file, "--port", "0", "--peer", "foo"], '--peer: "foo"'],
          [
            ["download", torrent, NPath.join(dir, "out.img"), "--port", "0", "--stall-timeout", "-1"],
            "--stall-timeout"
          ]
        ]
        const results = yield* Effect.forEach(cases, ([args]) => run(args), { concurrency: 2 })
        for (const [i, [, text]] of cases.entries()) {
          assert.strictEqual(results[i]!.code, 2, results[i]!.stderr)
          assert.include(oneLine(results[i]!.stderr), text)
        }
      }).pipe(Effect.scoped),
    300_000
  )

  it.live(
    "a torrent that is a list, an integer or a string says so; an extent ending at 2^53 is an invalid torrent, no file made",
    () =>
      Effect.gen(function* () {
        const dir = yield* tempDir
        const cases: ReadonlyArray<readonly [string, string]> = [
          ["le", "a list"],
          ["i5e", "an integer"],
          ["3:abc", "a string"]
        ]
        const results = yield* Effect.forEach(
          cases,
          ([bytes], i) => {
            const path = NPath.join(dir, `bad${i}.torrent`)
            NFS.writeFileSync(path, bytes)
            return run(["info", path])
          },
          { concurrency: 2 }
        )
        for (const [i, [, what]] of cases.entries()) {
          assert.strictEqual(results[i]!.code, 3, results[i]!.stderr)
          assert.include(oneLine(results[i]!.stderr), `holds ${what} where a torrent holds a dictionary`)
        }
        const huge = NPath.join(dir, "huge.torrent")
        NFS.writeFileSync(
          huge,
          Bencode.encode({
            info: {
              files: [{ length: 4096, path: [t("1ffffffffff000")] }],
              name: t("x"),
              "piece length": 16384,
              pieces: new Uint8Array(20)
            }
          })
        )
        const target = NPath.join(dir, "x.img")
        const result = yield* run(["download", huge, target, "--port", "0", "--exit"])
        assert.strictEqual(result.code, 3, result.stderr)
        assert.include(oneLine(result.stderr), "ends past 2^53")
        assert.isFalse(NFS.existsSync(target))
      }).pipe(Effect.scoped),
    300_000
  )

  it.live(
    "--help documents the exit codes and the stall timeout",
    () =>
      Effect.gen(function* () {
        const help = yield* run(["--help"])
        assert.strictEqual(help.code, 0)
        assert.include(help.stdout, "Exit codes: 0 done")
        assert.include(help.stdout, "6 data incomplete")
        const download = yield* run(["download", "--help"])
        assert.include(download.stdout, "--stall-timeout")
        assert.include(download.stdout, "block device")
      }),
    120_000
  )

  it.live.skipIf(!isRoot)(
    "a single-file torrent downloads onto a block device from offset 0 and seeds from it; a device too small is refused",
    () =>
      Effect.gen(function* () {
        const dir = yield* tempDir
        const loop = (size: number) =>
          Effect.acquireRelease(
            Effect.sync(() => {
              const backing = NPath.join(dir, `backing-${size}`)
              NFS.writeFileSync(backing, new Uint8Array(size))
              return NChild.execFileSync("losetup", ["-f", "--show", backing], { encoding: "utf8" }).trim()
            }),
            (device) => Effect.sync(() => NChild.execFileSync("losetup", ["-d", device]))
          )
        const data = NCrypto.randomBytes(4 * 1024 * 1024 + 1000)
        const image = NPath.join(dir, "disk.img")
        NFS.writeFileSync(image, data)
        const torrent = NPath.join(dir, "disk.torrent")
        assert.strictEqual((yield* run(["create", image, "-o", torrent])).code, 0)
        const device = yield* loop(6 * 1024 * 1024)
        const seeder = yield* start(["seed", torrent, image, "--bind", "127.0.0.1", "--port", "0", "--json"])
        const args = (target: string) => [
          "download",
          torrent,
          target,
          "--bind",
          "127.0.0.1",
          "--port",
          "0",
          "--peer",
          `127.0.0.1:${seeder.port}`,
          "--exit",
          "--json"
        ]
        const done = yield* run(args(device))
        assert.strictEqual(done.code, 0, done.stderr)
        const fd = NFS.openSync(device, "r")
        const copy = Buffer.alloc(data.length)
        NFS.readSync(fd, copy, 0, copy.length, 0)
        NFS.closeSync(fd)
        assert.strictEqual(Buffer.compare(copy, data), 0)
        const verified = yield* run(["verify", torrent, device, "--json"])
        assert.strictEqual(verified.code, 0, verified.stderr)
        const small = yield* loop(2 * 1024 * 1024)
        const refused = yield* run(args(small))
        assert.strictEqual(refused.code, 4, refused.stderr)
        assert.include(oneLine(refused.stderr), "the device has 2097152 bytes")
      }).pipe(Effect.scoped),
    300_000
  )
})
