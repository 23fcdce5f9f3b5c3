/**
 * A deploy in miniature on 127.0.0.1: three `ezio download` targets, then `ezio seed` dialling
 * them (`--peer`), each target told of the ones before it. The seeder's upload limit is far below
 * what the targets can take, so they finish only by trading pieces among themselves. The seeder
 * starts last so that every target is there from its first piece: a target whose start a loaded
 * machine delays would otherwise find every piece already handed out and have nothing to give.
 */
import * as NChild from "node:child_process"
import * as NCrypto from "node:crypto"
import * as NFS from "node:fs"
import * as NOS from "node:os"
import * as NPath from "node:path"
import { assert, describe, it } from "@effect/vitest"
import { Effect } from "effect"

const bin = NPath.resolve(import.meta.dirname, "../src/bin.ts")

type Event = Record<string, unknown> & { readonly event?: string }

/** `ezio args` with JSON lines on stdout; killed by PID when the scope closes, if still running. */
const start = (args: ReadonlyArray<string>) =>
  Effect.gen(function* () {
    const child = yield* Effect.acquireRelease(
      Effect.sync(() =>
        NChild.spawn(process.execPath, ["--import", "tsx", bin, ...args], {
          stdio: ["ignore", "pipe", "pipe"]
        })
      ),
      (child) =>
        Effect.sync(() => child.exitCode === null && child.signalCode === null && child.kill("SIGKILL"))
    )
    const events: Array<Event> = []
    const waiters: Array<() => void> = []
    let stderr = ""
    let partial = ""
    child.stderr!.on("data", (d: Buffer) => (stderr += d.toString()))
    child.stdout!.on("data", (d: Buffer) => {
      const lines = (partial + d.toString()).split("\n")
      partial = lines.pop()!
      for (const line of lines) {
        try {
          events.push(JSON.parse(line))
        } catch {
          continue
        }
      }
      for (const w of waiters.splice(0)) w()
    })
    const exited = new Promise<number | null>((resolve) => child.once("exit", (code) => resolve(code)))
    child.once("exit", () => {
      for (const w of waiters.splice(0)) w()
    })
    /** The first event named `name`; fails if the process exits without printing it. */
    const event = (name: string) =>
      Effect.async<Event, Error>((resume) => {
        const check = () => {
          const found = events.find((e) => e.event === name)
          if (found !== undefined) return resume(Effect.succeed(found))
          if (child.exitCode !== null || child.signalCode !== null)
            return resume(Effect.fail(new Error(`ezio ${args[0]} exited without "${name}": ${stderr}`)))
          waiters.push(check)
        }
        check()
      })
    /** SIGTERM, then the exit code (the process prints its stopped line on the way out). */
    const stop = Effect.promise(() => {
      if (child.exitCode === null && child.signalCode === null) child.kill("SIGTERM")
      return exited
    })
    return { event, stop, errors: () => stderr }
  })

const tempDir = Effect.acquireRelease(
  Effect.sync(() => NFS.mkdtempSync(NPath.join(NOS.tmpdir(), "ezio-swarm-"))),
  (dir) => Effect.sync(() => NFS.rmSync(dir, { recursive: true, force: true }))
)

const run = (args: ReadonlyArray<string>) =>
  Effect.promise(
    () =>
      new Promise<number | null>((resolve) =>
        NChild.execFile(process.execPath, ["--import", "tsx", bin, ...args], { timeout: 120_000 }, (error) =>
          resolve(error === null ? 0 : typeof error.code === "number" ? error.code : null)
        )
      )
  )

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
        const targets: Array<Effect.Effect.Success<ReturnType<typeof start>>> = []
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
