/**
 * Several partitions at once: one `ezio seed` serving two torrents (a raw disk image and a plain
 * file) from one pool, session and tracker, and two `ezio download` targets each taking both
 * torrent/target pairs, every process ending on its own; and the usage errors of the pairs.
 */
import * as NCrypto from "node:crypto"
import * as NFS from "node:fs"
import * as NPath from "node:path"
import { assert, describe, it } from "@effect/vitest"
import { Effect } from "effect"
import type { Session } from "@ezio/peer"
import * as Status from "../src/internal/serveStatus.js"
import { lastLine, oneLine, run, start, tempDir } from "./harness.js"

const MiB = 1024 * 1024

const jsonLines = (stdout: string): Array<Record<string, any>> =>
  stdout
    .split("\n")
    .filter((l) => l.startsWith("{"))
    .map((l) => JSON.parse(l) as Record<string, any>)

/** Two partitions: a raw image (data at both ends, a gap of zeros between) and a plain file. */
const partitions = (dir: string) =>
  Effect.gen(function* () {
    const image = NPath.join(dir, "sda1.img")
    const disk = Buffer.alloc(3 * MiB)
    NCrypto.randomBytes(700_000).copy(disk, 65536)
    // data up to the end, so the copy (which grows to its last extent) is the whole image
    NCrypto.randomBytes(256 * 1024).copy(disk, disk.length - 256 * 1024)
    NFS.writeFileSync(image, disk)
    const file = NPath.join(dir, "sda2.img")
    NFS.writeFileSync(file, NCrypto.randomBytes(2 * MiB + 4321))
    const t1 = NPath.join(dir, "sda1.torrent")
    const t2 = NPath.join(dir, "sda2.torrent")
    const [raw, plain] = yield* Effect.all(
      [
        run(["create", image, "--raw", "--granularity", "64KiB", "-o", t1]),
        run(["create", file, "--piece-length", "64KiB", "-o", t2])
      ],
      { concurrency: "unbounded" }
    )
    assert.strictEqual(raw.code, 0, raw.stderr)
    assert.strictEqual(plain.code, 0, plain.stderr)
    return { image, file, t1, t2 }
  })

describe("several partitions at once", () => {
  it.live(
    "seed --serve-tracker --expect 2 with two torrents and two downloads of both pairs: all exit 0 on their own, from one pool",
    () =>
      Effect.gen(function* () {
        const dir = yield* tempDir
        const { file, image, t1, t2 } = yield* partitions(dir)
        const pool = 32 * MiB
        const net = ["--bind", "127.0.0.1", "--port", "0", "--json", "--pool-size", "32MiB"]
        const seeder = yield* start([
          "seed",
          t1,
          image,
          t2,
          file,
          "--serve-tracker",
          "--tracker-port",
          "0",
          "--expect",
          "2",
          "--deploy-timeout",
          "150",
          ...net
        ])
        assert.strictEqual(seeder.ready.mode, "seed")
        assert.strictEqual((seeder.ready.torrents as Array<unknown>).length, 2)
        const tracker = String(seeder.ready.tracker)
        const targets = [1, 2].map((i) => ({
          name: `pc-0${i}`,
          sda1: NPath.join(dir, `pc-0${i}-sda1.img`),
          sda2: NPath.join(dir, `pc-0${i}-sda2.img`)
        }))
        const downloads = yield* Effect.forEach(targets, (t) =>
          start([
            "download",
            t1,
            t.sda1,
            t2,
            t.sda2,
            "--tracker",
            tracker,
            "--name",
            t.name,
            "--seed-idle",
            "5",
            ...net
          ])
        )
        for (const d of downloads) {
          const torrents = d.ready.torrents as Array<{ name: string; target: string }>
          assert.deepStrictEqual(
            torrents.map((t) => t.name),
            ["sda1", "sda2.img"]
          )
        }

        // every process ends on its own, within the bound of this test
        const codes = yield* Effect.all([seeder.exited, ...downloads.map((d) => d.exited)], {
          concurrency: "unbounded"
        })
        assert.deepStrictEqual(codes, [0, 0, 0], [seeder, ...downloads].map((p) => p.errors()).join("\n"))
        for (const t of targets) {
          assert.strictEqual(Buffer.compare(NFS.readFileSync(t.sda1), NFS.readFileSync(image)), 0, t.sda1)
          assert.strictEqual(Buffer.compare(NFS.readFileSync(t.sda2), NFS.readFileSync(file)), 0, t.sda2)
        }
        for (const d of downloads) {
          const events = jsonLines(d.output())
          assert.isDefined(
            events.find((e) => e.event === "finished"),
            d.output()
          )
          const stopped = events.find((e) => e.event === "stopped")!
          assert.strictEqual(stopped.have, stopped.pieces)
          assert.deepStrictEqual(
            stopped.torrents.map((t: any) => t.have === t.pieces),
            [true, true]
          )
        }

        const events = jsonLines(seeder.output())
        // a target is a machine (one peer id for both torrents): two targets, not four
        const summary = events.find((e) => e.event === "deploy")!
        assert.strictEqual(summary.targets, 2)
        assert.strictEqual(summary.done, 2)
        assert.deepStrictEqual(summary.summary.map((r: any) => r.name).sort(), ["pc-01", "pc-02"])
        for (const row of summary.summary) assert.strictEqual(row.state, "done")

        // one pool for both torrents: every status line and the summary report the capacity of
        // --pool-size once, and the peak never exceeded it
        const statuses = events.filter((e) => e.event === "status")
        assert.isAbove(statuses.length, 0)
        for (const s of statuses) {
          assert.strictEqual(s.poolCapacity, pool)
          assert.isAtMost(s.poolPeak, pool)
          assert.deepStrictEqual(
            s.torrents.map((t: any) => t.name),
            ["sda1", "sda2.img"]
          )
        }
        const stopped = events.find((e) => e.event === "stopped")!
        assert.strictEqual(stopped.poolCapacity, pool)
        assert.isAtMost(stopped.poolPeak, pool)
        // both torrents were served by this one process
        assert.strictEqual(stopped.torrents.length, 2)
        for (const t of stopped.torrents) assert.isAbove(t.uploaded, 0, JSON.stringify(t))
      }).pipe(Effect.scoped),
    200_000
  )

  it.live(
    "a download of two partitions whose second has no seeder: the first completes, the stall of the second exits 6 naming its target",
    () =>
      Effect.gen(function* () {
        const dir = yield* tempDir
        const { image, t1, t2 } = yield* partitions(dir)
        const net = ["--bind", "127.0.0.1", "--port", "0", "--json"]
        const seeder = yield* start(["seed", t1, image, ...net])
        const sda1 = NPath.join(dir, "copy-sda1.img")
        const sda2 = NPath.join(dir, "copy-sda2.img")
        const result = yield* run(
          [
            "download",
            t1,
            sda1,
            t2,
            sda2,
            "--peer",
            `127.0.0.1:${seeder.port}`,
            "--stall-timeout",
            "10",
            "--exit",
            ...net
          ],
          { timeoutMs: 120_000 }
        )
        assert.strictEqual(result.code, 6, result.stderr)
        assert.match(
          lastLine(result.stderr),
          new RegExp(`^ezio: ${sda2}: \\d+ of \\d+ piece\\(s\\) missing: no progress for 10 s`)
        )
        assert.strictEqual(Buffer.compare(NFS.readFileSync(sda1), NFS.readFileSync(image)), 0)
        const stopped = jsonLines(result.stdout).find((e) => e.event === "stopped")!
        assert.strictEqual(stopped.torrents[0].have, stopped.torrents[0].pieces)
        assert.strictEqual(stopped.torrents[1].have, 0)
        assert.notInclude(result.stdout, '"event":"complete"')
      }).pipe(Effect.scoped),
    200_000
  )

  it.live(
    "an odd number of arguments, or a torrent or target given twice, is a usage error (exit 2)",
    () =>
      Effect.gen(function* () {
        const dir = yield* tempDir
        const { file, image, t1, t2 } = yield* partitions(dir)
        const target = NPath.join(dir, "a.img")
        NFS.copyFileSync(t1, NPath.join(dir, "copy.torrent"))
        // each is refused before anything listens or is written; run at once, they take seconds
        const [odd, oddSeed, twice, same, sameTarget] = yield* Effect.all(
          [
            run(["download", t1, target, t2, "--port", "0"]),
            run(["seed", t1, image, t2, "--port", "0"]),
            run(["seed", t1, image, t1, file, "--port", "0"]),
            run(["download", t1, target, t2, target, "--port", "0"]),
            run([
              "download",
              t1,
              file,
              NPath.join(dir, "copy.torrent"),
              NPath.join(dir, "b.img"),
              "--port",
              "0"
            ])
          ],
          { concurrency: "unbounded" }
        )
        assert.strictEqual(odd.code, 2, odd.stderr)
        assert.include(odd.stderr, "Missing argument <target>")
        assert.strictEqual(oddSeed.code, 2, oddSeed.stderr)
        assert.include(oddSeed.stderr, "Missing argument <data>")
        assert.strictEqual(twice.code, 2, twice.stderr)
        assert.match(
          oneLine(twice.stderr),
          /^ezio: torrent: .*sda1\.torrent is given twice; give each torrent once$/
        )
        assert.strictEqual(same.code, 2, same.stderr)
        assert.match(
          oneLine(same.stderr),
          /^ezio: target: .*a\.img is given for both .*sda1\.torrent and .*sda2\.torrent/
        )
        assert.strictEqual(sameTarget.code, 2, sameTarget.stderr)
        assert.match(
          oneLine(sameTarget.stderr),
          /^ezio: torrent: .*copy\.torrent is the same torrent \([0-9a-f]{40}\) as .*sda1\.torrent/
        )
        assert.isFalse(NFS.existsSync(target))
      }).pipe(Effect.scoped),
    120_000
  )
})

const status = (s: Partial<Session.Status>): Session.Status => ({
  peers: 0,
  uploaded: 0,
  downloaded: 0,
  uploadRate: 0,
  downloadRate: 0,
  redundant: 0,
  have: 0,
  pieces: 10,
  complete: false,
  downloading: true,
  hashFailures: 0,
  retracted: 0,
  banned: [],
  errors: [],
  seeds: 0,
  lastUploadAt: undefined,
  missingAvailable: 0,
  ...s
})

describe("the status of several swarms as one", () => {
  it("sums counts and rates, is complete only when every swarm is, keeps the latest upload and a failure", () => {
    const a = status({
      peers: 2,
      seeds: 1,
      uploaded: 100,
      uploadRate: 10,
      have: 10,
      complete: true,
      lastUploadAt: 5
    })
    const b = status({
      peers: 3,
      seeds: 3,
      uploaded: 50,
      downloadRate: 7,
      have: 4,
      lastUploadAt: 9,
      failure: "EIO"
    })
    const t = Status.total([a, b])
    assert.deepInclude(t, {
      peers: 5,
      seeds: 4,
      uploaded: 150,
      uploadRate: 10,
      downloadRate: 7,
      have: 14,
      pieces: 20
    })
    assert.isFalse(t.complete)
    assert.strictEqual(t.lastUploadAt, 9)
    assert.strictEqual(t.failure, "EIO")
    assert.isTrue(Status.total([a, status({ complete: true, have: 10 })]).complete)
    assert.isUndefined(Status.total([a, status({})]).failure)
    assert.strictEqual(Status.total([b]), b)
  })
})
