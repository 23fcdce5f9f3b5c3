/**
 * `ezio download` and `ezio info` given a magnet link (BEP 9): a real process, its output and
 * its exit codes.
 */
import * as NChild from "node:child_process"
import * as NCrypto from "node:crypto"
import * as NFS from "node:fs"
import * as NOS from "node:os"
import * as NPath from "node:path"
import { assert, describe, it } from "@effect/vitest"
import { Effect } from "effect"

const bin = NPath.resolve(import.meta.dirname, "../src/bin.ts")

interface Result {
  readonly code: number | null
  readonly stdout: string
  readonly stderr: string
}

/** Runs `ezio args` to completion (bounded). */
const run = (args: ReadonlyArray<string>, timeoutMs = 60_000) =>
  Effect.promise(
    () =>
      new Promise<Result>((resolve) => {
        NChild.execFile(
          process.execPath,
          ["--import", "tsx", bin, ...args],
          { timeout: timeoutMs, maxBuffer: 16 * 1024 * 1024 },
          (error, stdout, stderr) =>
            resolve({
              code: error === null ? 0 : typeof error.code === "number" ? error.code : null,
              stdout,
              stderr
            })
        )
      })
  )

/** Starts `ezio args` and resolves once it prints its JSON ready line; killed by PID at scope close. */
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
    let stdout = ""
    let stderr = ""
    child.stderr!.on("data", (d: Buffer) => (stderr += d.toString()))
    const ready = yield* Effect.async<Record<string, unknown>, Error>((resume) => {
      child.stdout!.on("data", (d: Buffer) => {
        stdout += d.toString()
        const line = stdout.split("\n").find((l) => l.includes('"event":"ready"'))
        if (line !== undefined) resume(Effect.succeed(JSON.parse(line)))
      })
      child.once("exit", (code) => resume(Effect.fail(new Error(`exited early with ${code}: ${stderr}`))))
    }).pipe(Effect.timeout("60 seconds"))
    return { child, ready }
  })

const tempDir = Effect.acquireRelease(
  Effect.sync(() => NFS.mkdtempSync(NPath.join(NOS.tmpdir(), "ezio-cli-magnet-"))),
  (dir) => Effect.sync(() => NFS.rmSync(dir, { recursive: true, force: true }))
)

describe("ezio with a magnet link", () => {
  it.live(
    "download 'magnet:?...&x.pe=127.0.0.1:PORT' target --exit fetches the metadata and a verified copy from ezio seed",
    () =>
      Effect.gen(function* () {
        const dir = yield* tempDir
        const file = NPath.join(dir, "disk.img")
        const data = NCrypto.randomBytes(6 * 1024 * 1024 + 1234)
        NFS.writeFileSync(file, data)
        const torrent = NPath.join(dir, "disk.torrent")
        assert.strictEqual((yield* run(["create", file, "-o", torrent])).code, 0)
        const info = JSON.parse((yield* run(["info", torrent, "--json"])).stdout) as { infoHash: string }
        const seeder = yield* start(["seed", torrent, file, "--bind", "127.0.0.1", "--port", "0", "--json"])
        const port = Number(String(seeder.ready.listen).split(":").pop())
        const link = `magnet:?xt=urn:btih:${info.infoHash}&dn=disk.img&x.pe=127.0.0.1:${port}`

        const described = yield* run(["info", link])
        assert.strictEqual(described.code, 0, described.stderr)
        assert.include(described.stdout, info.infoHash)
        assert.include(described.stdout, "come from peers")

        const target = NPath.join(dir, "copy.img")
        const downloaded = yield* run(
          ["download", link, target, "--bind", "127.0.0.1", "--port", "0", "--exit", "--json"],
          90_000
        )
        assert.strictEqual(downloaded.code, 0, downloaded.stderr)
        const events = downloaded.stdout
          .split("\n")
          .filter((l) => l.startsWith("{"))
          .map((l) => JSON.parse(l) as { event?: string; infoHash?: string })
        assert.deepStrictEqual(
          events.map((e) => e.event).filter((e) => e === "metadata" || e === "ready" || e === "complete"),
          ["metadata", "ready", "complete"]
        )
        assert.strictEqual(events.find((e) => e.event === "ready")?.infoHash, info.infoHash)
        assert.strictEqual(Buffer.compare(NFS.readFileSync(target), data), 0)
      }).pipe(Effect.scoped),
    150_000
  )

  it.live(
    "a malformed magnet link is a usage error, in one line",
    () =>
      Effect.gen(function* () {
        const dir = yield* tempDir
        const result = yield* run([
          "download",
          "magnet:?xt=urn:btih:123",
          NPath.join(dir, "t.img"),
          "--port",
          "0"
        ])
        assert.strictEqual(result.code, 2, result.stderr)
        assert.match(result.stderr.trim(), /^ezio: .*invalid magnet link/)
        assert.notInclude(result.stderr, "    at ")
      }).pipe(Effect.scoped),
    60_000
  )
})
