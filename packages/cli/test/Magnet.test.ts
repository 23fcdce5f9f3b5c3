/**
 * `ezio download` and `ezio info` given a magnet link (BEP 9): a real process, its output and
 * its exit codes.
 */
import * as NCrypto from "node:crypto"
import * as NFS from "node:fs"
import * as NPath from "node:path"
import { assert, describe, it } from "@effect/vitest"
import { Effect } from "effect"
import { run, start, tempDir } from "./harness.js"

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
          { timeoutMs: 90_000 }
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
