/**
 * Downloading the same file from one python3-libtorrent seeder (`high_performance_seed()`) over
 * 127.0.0.1, twice in one run: with `ezio download` (the CLI in its own process, a 64 MiB pool)
 * and with a python3-libtorrent downloader. This is a deploy target's side. Prints both MiB/s
 * (from the session's start to the last piece verified: `ready` to `complete` for ezio, the
 * torrent added to done for libtorrent), the ratio, and each downloader's peak anonymous memory.
 * Every download is checked byte-identical against the source outside the timing.
 *
 *   pnpm --filter @ezio/peer bench     (EZIO_BENCH_MIB=1024, EZIO_BENCH_DIR=os.tmpdir(),
 *                                       EZIO_BENCH_POOL=64MiB, EZIO_BENCH_ROUNDS=2)
 */
import * as NChild from "node:child_process"
import * as NFS from "node:fs"
import * as NOS from "node:os"
import * as NPath from "node:path"
import { Effect } from "effect"
import { identical, makeSource, sampler } from "./support.js"
import { hasLibtorrent, libtorrentDownload, libtorrentSeed } from "@ezio/test-support/clients"

const mib = Number(process.env.EZIO_BENCH_MIB ?? 1024)
const rounds = Number(process.env.EZIO_BENCH_ROUNDS ?? 2)
const poolSize = process.env.EZIO_BENCH_POOL ?? "64MiB"
const root = NFS.mkdtempSync(NPath.join(process.env.EZIO_BENCH_DIR ?? NOS.tmpdir(), "ezio-bench-download-"))
const cli = NPath.resolve(import.meta.dirname, "../../cli/src/bin.ts")

interface Row {
  readonly downloader: string
  readonly mibps: number
  readonly peakAnonMiB: number
}

const freshDir = () => {
  const out = NPath.join(root, `out-${Date.now()}-${Math.random().toString(16).slice(2)}`)
  NFS.mkdirSync(out)
  return out
}

const ours = (torrent: string, source: string, port: number) =>
  Effect.gen(function* () {
    const out = freshDir()
    const target = NPath.join(out, NPath.basename(source))
    const child = NChild.spawn(
      process.execPath,
      [
        ...(process.env.EZIO_BENCH_NODE_ARGS?.split(" ").filter((a) => a !== "") ?? []),
        "--import",
        "tsx",
        cli,
        "download",
        torrent,
        target,
        "--bind",
        "127.0.0.1",
        "--port",
        "0",
        "--peer",
        `127.0.0.1:${port}`,
        "--exit",
        "--json",
        "--pool-size",
        poolSize
      ],
      { stdio: ["ignore", "pipe", "inherit"] }
    )
    yield* Effect.addFinalizer(() =>
      Effect.sync(() => {
        if (child.exitCode === null) child.kill("SIGTERM")
        NFS.rmSync(out, { recursive: true, force: true })
      })
    )
    const memory = sampler(child.pid!)
    const seconds = yield* Effect.async<number, Error>((resume) => {
      let buffered = ""
      let readyAt: bigint | undefined
      let completeAt: bigint | undefined
      child.stdout!.on("data", (chunk: Buffer) => {
        buffered += chunk.toString()
        let newline = buffered.indexOf("\n")
        while (newline >= 0) {
          const line = buffered.slice(0, newline)
          buffered = buffered.slice(newline + 1)
          if (line.includes('"event":"ready"')) readyAt = process.hrtime.bigint()
          if (line.includes('"event":"complete"')) completeAt = process.hrtime.bigint()
          newline = buffered.indexOf("\n")
        }
      })
      const timer = setTimeout(() => child.kill("SIGTERM"), 300_000)
      child.once("exit", (code) => {
        clearTimeout(timer)
        if (code !== 0 || readyAt === undefined || completeAt === undefined)
          return resume(Effect.fail(new Error(`ezio download exited with ${code} before completing`)))
        resume(Effect.succeed(Number(completeAt - readyAt) / 1e9))
      })
    })
    const peakAnonMiB = memory.stop()
    if (!identical(target, source)) throw new Error("ezio download: the copy differs from the source")
    return { downloader: `ezio download (pool ${poolSize})`, mibps: mib / seconds, peakAnonMiB } satisfies Row
  }).pipe(Effect.scoped)

const theirs = (torrent: string, source: string, port: number) =>
  Effect.gen(function* () {
    const out = freshDir()
    const summary = yield* libtorrentDownload({ torrent, saveDir: out, peers: [port], timeoutMs: 300_000 })
    const copy = NPath.join(out, NPath.basename(source))
    const same = summary.done && summary.hash_failures === 0 && identical(copy, source)
    NFS.rmSync(out, { recursive: true, force: true })
    if (!same) throw new Error(`libtorrent download failed: ${JSON.stringify(summary)}`)
    // The script reports its max RSS (ru_maxrss), file-backed pages included: an upper bound.
    return {
      downloader: "python3-libtorrent",
      mibps: summary.mib_per_s,
      peakAnonMiB: summary.peak_rss_kib / 1024
    } satisfies Row
  })

const main = Effect.gen(function* () {
  if (!hasLibtorrent) {
    console.log(
      "python3-libtorrent is not installed (apt-get install -y python3-libtorrent): skipping the download bench"
    )
    return
  }
  const { dir, data, torrent } = yield* makeSource(root, mib)

  const seeder = yield* libtorrentSeed({ torrent, saveDir: dir, highPerformance: true, noTrackers: true })
  const rows: Array<Row> = []
  for (let round = 0; round < rounds; round++) {
    rows.push(yield* ours(torrent, data, seeder.port))
    rows.push(yield* theirs(torrent, data, seeder.port))
  }
  const best = (name: string) =>
    rows.filter((r) => r.downloader.startsWith(name)).reduce((a, b) => (b.mibps > a.mibps ? b : a))
  const a = best("ezio")
  const b = best("python3-libtorrent")
  console.log(
    `\ndownload a ${mib} MiB file from one python3-libtorrent seeder (high_performance_seed) over 127.0.0.1, 1 MiB pieces, best of ${rounds}\n`
  )
  console.log(
    "| downloader | MiB/s | peak memory MiB (ezio: anonymous RSS; libtorrent: max RSS) | ratio vs libtorrent |"
  )
  console.log("| --- | ---: | ---: | ---: |")
  for (const row of [a, b])
    console.log(
      `| ${row.downloader} | ${row.mibps.toFixed(0)} | ${row.peakAnonMiB.toFixed(0)} | ${(row.mibps / b.mibps).toFixed(2)}x |`
    )
  console.log(
    `\nall runs: ${rows.map((r) => `${r.downloader.split(" ")[0]} ${r.mibps.toFixed(0)}`).join(", ")}`
  )
}).pipe(Effect.scoped)

Effect.runPromise(
  main.pipe(Effect.ensuring(Effect.sync(() => NFS.rmSync(root, { recursive: true, force: true }))))
).catch((error) => {
  console.error(error)
  process.exitCode = 1
})
