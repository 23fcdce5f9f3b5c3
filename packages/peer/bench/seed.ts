/**
 * Seeding the same file to a python3-libtorrent downloader over 127.0.0.1, twice in one run: from
 * our seeder (the `ezio seed` CLI in its own process) and from a libtorrent seeder with
 * `high_performance_seed()` settings. Prints both MiB/s (first payload byte to last), the ratio,
 * and each seeder's peak anonymous memory (RssAnon, sampled from /proc every 50 ms).
 *
 *   pnpm --filter @ezio/peer bench     (EZIO_BENCH_MIB=1024, EZIO_BENCH_DIR=os.tmpdir(),
 *                                       EZIO_BENCH_POOL=64MiB, EZIO_BENCH_ROUNDS=2)
 */
import * as NChild from "node:child_process"
import * as NFS from "node:fs"
import * as NOS from "node:os"
import * as NPath from "node:path"
import { Effect } from "effect"
import { makeSource, sampler } from "./support.js"
import { hasLibtorrent, libtorrentDownload, libtorrentSeed } from "@ezio/test-support/clients"

const mib = Number(process.env.EZIO_BENCH_MIB ?? 1024)
const rounds = Number(process.env.EZIO_BENCH_ROUNDS ?? 2)
const poolSize = process.env.EZIO_BENCH_POOL ?? "64MiB"
const root = NFS.mkdtempSync(NPath.join(process.env.EZIO_BENCH_DIR ?? NOS.tmpdir(), "ezio-bench-seed-"))
const cli = NPath.resolve(import.meta.dirname, "../../cli/src/bin.ts")

interface Row {
  readonly seeder: string
  readonly mibps: number
  readonly peakAnonMiB: number
}

const download = (torrent: string, port: number) =>
  Effect.gen(function* () {
    const out = NPath.join(root, `out-${Date.now()}`)
    NFS.mkdirSync(out)
    const summary = yield* libtorrentDownload({ torrent, saveDir: out, peers: [port], timeoutMs: 300_000 })
    NFS.rmSync(out, { recursive: true, force: true })
    if (!summary.done || summary.hash_failures !== 0)
      throw new Error(`download failed: ${JSON.stringify(summary)}`)
    return summary.transfer_mib_per_s ?? summary.mib_per_s ?? 0
  })

const ours = (torrent: string, data: string) =>
  Effect.gen(function* () {
    const child = NChild.spawn(
      process.execPath,
      [
        "--import",
        "tsx",
        cli,
        "seed",
        torrent,
        data,
        "--bind",
        "127.0.0.1",
        "--port",
        "0",
        "--trust",
        "--json",
        "--pool-size",
        poolSize
      ],
      { stdio: ["ignore", "pipe", "inherit"] }
    )
    yield* Effect.addFinalizer(() => Effect.sync(() => child.exitCode === null && child.kill("SIGTERM")))
    const port = yield* Effect.async<number, Error>((resume) => {
      let buffered = ""
      child.stdout!.on("data", (chunk: Buffer) => {
        buffered += chunk.toString()
        const ready = buffered.split("\n").find((line) => line.includes('"event":"ready"'))
        if (ready !== undefined) resume(Effect.succeed(Number(JSON.parse(ready).listen.split(":").pop())))
      })
      child.once("exit", (code) => resume(Effect.fail(new Error(`ezio seed exited with ${code}`))))
    })
    const memory = sampler(child.pid!)
    const mibps = yield* download(torrent, port)
    return { seeder: `ezio seed (pool ${poolSize})`, mibps, peakAnonMiB: memory.stop() } satisfies Row
  }).pipe(Effect.scoped)

const theirs = (torrent: string, dir: string) =>
  Effect.gen(function* () {
    const seeder = yield* libtorrentSeed({ torrent, saveDir: dir, highPerformance: true, noTrackers: true })
    const memory = sampler(seeder.pid)
    const mibps = yield* download(torrent, seeder.port)
    return { seeder: "libtorrent high_performance_seed", mibps, peakAnonMiB: memory.stop() } satisfies Row
  }).pipe(Effect.scoped)

const main = Effect.gen(function* () {
  if (!hasLibtorrent) {
    console.log(
      "python3-libtorrent is not installed (apt-get install -y python3-libtorrent): skipping the seed bench"
    )
    return
  }
  const { dir, data, torrent } = yield* makeSource(root, mib)

  const rows: Array<Row> = []
  for (let round = 0; round < rounds; round++) {
    rows.push(yield* ours(torrent, data))
    rows.push(yield* theirs(torrent, dir))
  }
  const best = (name: string) =>
    rows.filter((r) => r.seeder.startsWith(name)).reduce((a, b) => (b.mibps > a.mibps ? b : a))
  const a = best("ezio")
  const b = best("libtorrent")
  console.log(
    `\nseed a ${mib} MiB file to python3-libtorrent over 127.0.0.1, 1 MiB pieces, best of ${rounds}\n`
  )
  console.log("| seeder | MiB/s | peak anonymous memory MiB | ratio vs libtorrent |")
  console.log("| --- | ---: | ---: | ---: |")
  for (const row of [a, b])
    console.log(
      `| ${row.seeder} | ${row.mibps.toFixed(0)} | ${row.peakAnonMiB.toFixed(0)} | ${(row.mibps / b.mibps).toFixed(2)}x |`
    )
  console.log(`\nall runs: ${rows.map((r) => `${r.seeder.split(" ")[0]} ${r.mibps.toFixed(0)}`).join(", ")}`)
})

Effect.runPromise(
  main.pipe(Effect.ensuring(Effect.sync(() => NFS.rmSync(root, { recursive: true, force: true }))))
).catch((error) => {
  console.error(error)
  process.exitCode = 1
})
