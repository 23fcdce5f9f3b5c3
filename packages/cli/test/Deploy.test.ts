/**
 * A deploy from start to finish, as an operator runs it: `ezio seed --serve-tracker --expect 3
 * --dashboard PORT` and three plain `ezio download` targets on 127.0.0.1, every process exiting 0
 * on its own; the dashboard read in a real browser (Debian's chromium, headless).
 */
import * as NCrypto from "node:crypto"
import * as NFS from "node:fs"
import * as NPath from "node:path"
import { assert, describe, it } from "@effect/vitest"
import { Effect } from "effect"
import { chromium } from "playwright-core"
import { spawn as start, tempDir } from "./harness.js"

const chromiumPath = "/usr/bin/chromium"

const get = (url: string) =>
  Effect.promise(() => fetch(url).then(async (r) => ({ status: r.status, body: await r.text() })))

/** Parses Prometheus text format 0.0.4 strictly enough to catch a malformed line; name -> samples. */
const parsePrometheus = (text: string) => {
  const samples = new Map<string, Array<{ labels: string; value: number }>>()
  const typed = new Set<string>()
  for (const line of text.split("\n")) {
    if (line === "") continue
    const meta = /^# (HELP|TYPE) ([a-zA-Z_:][a-zA-Z0-9_:]*) (.+)$/.exec(line)
    if (meta !== null) {
      if (meta[1] === "TYPE") {
        assert.include(["counter", "gauge", "histogram", "summary", "untyped"], meta[3])
        typed.add(meta[2]!)
      }
      continue
    }
    const sample =
      /^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{(?:[a-zA-Z_][a-zA-Z0-9_]*="(?:[^"\\]|\\.)*",?)*\})? (\S+)$/.exec(line)
    assert.isNotNull(sample, `not a Prometheus sample line: ${line}`)
    const [, name, labels, value] = sample!
    assert.isTrue(typed.has(name!), `${name} has no TYPE line`)
    assert.isFalse(Number.isNaN(Number(value)), line)
    samples.set(name!, [...(samples.get(name!) ?? []), { labels: labels ?? "", value: Number(value) }])
  }
  return samples
}

const hasChromium = NFS.existsSync(chromiumPath)

describe("a deploy from start to finish", () => {
  it.live.skipIf(!hasChromium)(
    "seed --expect 3 --dashboard and three plain downloads all exit 0 on their own; the browser sees three rows reach 100%",
    () =>
      Effect.gen(function* () {
        const dir = yield* tempDir
        const image = NPath.join(dir, "disk.img")
        NFS.writeFileSync(image, NCrypto.randomBytes(6 * 1024 * 1024 + 1234))
        const torrent = NPath.join(dir, "disk.torrent")
        const create = yield* start(["create", image, "-o", torrent, "--piece-length", "64KiB", "--json"])
        assert.strictEqual(yield* create.exited, 0, create.errors())
        const net = ["--bind", "127.0.0.1", "--port", "0", "--json", "--pool-size", "32MiB"]
        const seed = yield* start([
          "seed",
          torrent,
          image,
          "--serve-tracker",
          "--tracker-port",
          "0",
          "--expect",
          "3",
          "--dashboard",
          "0",
          "--deploy-timeout",
          "200",
          ...net
        ])
        const ready = yield* seed.event("ready")
        const dashboard = String((yield* seed.event("dashboard")).url)
        assert.match(dashboard, /^http:\/\/127\.0\.0\.1:\d+\/$/)

        const before = yield* get(`${dashboard}metrics`)
        assert.strictEqual(before.status, 200)
        const metrics = parsePrometheus(before.body)
        for (const name of [
          "ezio_pool_in_use_bytes",
          "ezio_uploaded_bytes_total",
          "ezio_peers",
          "ezio_pieces",
          "ezio_hash_failures_total",
          "ezio_deploy_targets"
        ])
          assert.isTrue(metrics.has(name), `${name} in /metrics`)

        const browser = yield* Effect.acquireRelease(
          Effect.promise(() =>
            chromium.launch({
              executablePath: chromiumPath,
              args: ["--no-sandbox", "--disable-gpu", "--disable-background-networking"]
            })
          ),
          (b) => Effect.promise(() => b.close())
        )
        const page = yield* Effect.promise(() => browser.newPage({ viewport: { width: 390, height: 700 } }))
        yield* Effect.promise(() => page.goto(dashboard))

        const targets = yield* Effect.forEach([1, 2, 3], (i) =>
          start([
            "download",
            torrent,
            NPath.join(dir, `target-${i}.img`),
            "--tracker",
            String(ready.tracker),
            "--name",
            `pc-0${i}`,
            "--seed-idle",
            "10",
            ...net
          ])
        )
        // the rendered rows, not the HTML: three targets, each at 100%
        yield* Effect.promise(() =>
          page.waitForFunction(
            `(() => {
              const rows = [...document.querySelectorAll("#targets tr")]
              return rows.length === 3 && rows.every((r) => r.querySelector(".bar > span")?.textContent === "100%")
            })()`,
            undefined,
            { timeout: 200_000, polling: 250 }
          )
        )
        const rows = yield* Effect.promise(() =>
          page.$$eval("#targets tr", (trs) =>
            trs.map((tr) => ({
              name: tr.querySelector(".name")?.textContent,
              progress: tr.querySelector(".bar > span")?.textContent
            }))
          )
        )
        assert.deepStrictEqual(rows.map((r) => r.name).sort(), ["pc-01", "pc-02", "pc-03"])

        // every process ends on its own, within the bound of this test
        const codes = yield* Effect.all([seed.exited, ...targets.map((t) => t.exited)], {
          concurrency: "unbounded"
        })
        assert.deepStrictEqual(codes, [0, 0, 0, 0], [seed, ...targets].map((p) => p.errors()).join("\n"))
        for (const [i, t] of targets.entries()) {
          assert.deepStrictEqual(
            NFS.readFileSync(NPath.join(dir, `target-${i + 1}.img`)),
            NFS.readFileSync(image)
          )
          assert.isDefined(t.lines().find((l) => l.includes('"event":"finished"')))
        }
        const summary = JSON.parse(seed.lines().find((l) => l.includes('"event":"deploy"'))!)
        assert.strictEqual(summary.done, 3)
        assert.deepStrictEqual(summary.summary.map((r: any) => r.name).sort(), ["pc-01", "pc-02", "pc-03"])
        for (const row of summary.summary) {
          assert.strictEqual(row.state, "done")
          assert.isAbove(row.seconds, 0)
          assert.isAbove(row.averageRate, 0)
        }
        if (process.env.EZIO_SCREENSHOT !== undefined)
          yield* Effect.promise(() => page.screenshot({ path: process.env.EZIO_SCREENSHOT! }))
      }).pipe(Effect.scoped),
    300_000
  )
})
