/**
 * A deploy in miniature on 127.0.0.1: three `ezio download` targets, then `ezio seed` dialling
 * them (`--peer`), each target told of the ones before it. The seeder's upload limit is far below
 * what the targets can take, so they finish only by trading pieces among themselves. The seeder
 * starts last so that every target is there from its first piece: a target whose start a loaded
 * machine delays would otherwise find every piece already handed out and have nothing to give.
 */
import * as NCrypto from "node:crypto"
import * as NFS from "node:fs"
import * as NPath from "node:path"
import { assert, describe, it } from "@effect/vitest"
import { Effect } from "effect"
import { type Proc, run as runEzio, spawn as start, tempDir } from "./harness.js"

const run = (args: ReadonlyArray<string>) =>
  runEzio(args, { timeoutMs: 120_000 }).pipe(Effect.map((r) => r.code))

describe("ezio swarm", () => {
  it.live(
    "a seeder and three targets: the targets trade pieces and every copy is byte-identical",
    () =>
      Effect.gen(function* () {
        const dir = yield* tempDir
        const source = NPath.join(dir, "disk.img")
        const data = NCrypto.randomBytes(12 * 1024 * 1024)
        NFS.writeFileSync(source, data)
        const torrent = NPath.join(dir, "disk.torrent")
        assert.strictEqual(yield* run(["create", source, "-o", torrent, "--piece-length", "256KiB"]), 0)

        const copies = [0, 1, 2].map((i) => NPath.join(dir, `target${i}.img`))
        const targets: Array<Proc> = []
        const listening: Array<string> = []
        for (const copy of copies) {
          const target = yield* start([
            "download",
            torrent,
            copy,
            "--bind",
            "127.0.0.1",
            "--port",
            "0",
            ...listening.flatMap((peer) => ["--peer", peer]),
            "--json"
          ])
          listening.push(String((yield* target.event("ready")).listen))
          targets.push(target)
        }
        const seeder = yield* start([
          "seed",
          torrent,
          source,
          "--bind",
          "127.0.0.1",
          "--port",
          "0",
          ...listening.flatMap((peer) => ["--peer", peer]),
          "--upload-limit",
          "2MiB",
          "--json"
        ])
        yield* seeder.event("ready")
        // Each target keeps seeding to the others once complete, until stopped.
        yield* Effect.forEach(targets, (t) => t.event("complete"), { concurrency: "unbounded" })
        yield* Effect.forEach(targets, (t) => t.stop, { concurrency: "unbounded" })
        yield* seeder.stop
        const stopped = yield* Effect.forEach(targets, (t) => t.event("stopped"))
        const seederStopped = yield* seeder.event("stopped")
        for (const [i, s] of stopped.entries()) {
          assert.strictEqual(s.downloaded, data.length, `target ${i} kept the whole image`)
          assert.isAbove(Number(s.uploaded), 0, `target ${i} uploaded to the others`)
          assert.isNumber(s.redundant)
        }
        for (const copy of copies) assert.strictEqual(Buffer.compare(NFS.readFileSync(copy), data), 0)
        const sent = Number(seederStopped.uploaded) + stopped.reduce((a, s) => a + Number(s.uploaded), 0)
        console.log(
          `swarm: seeder sent ${(Number(seederStopped.uploaded) / data.length).toFixed(2)} × size, sent by all / kept ${(sent / (3 * data.length)).toFixed(3)}`
        )
      }).pipe(Effect.scoped),
    240_000
  )
})
