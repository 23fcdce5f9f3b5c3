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
import { Create, Hasher, Metainfo } from "@ezio/torrent"
import { Effect } from "effect"
import { hasLibtorrent, libtorrentDownload, libtorrentSeed } from "../test/support/clients.js"

const mib = Number(process.env.EZIO_BENCH_MIB ?? 1024)
const rounds = Number(process.env.EZIO_BENCH_ROUNDS ?? 2)
const poolSize = process.env.EZIO_BENCH_POOL ?? "64MiB"
const root = NFS.mkdtempSync(NPath.join(process.env.EZIO_BENCH_DIR ?? NOS.tmpdir(), "ezio-bench-seed-"))
const cli = NPath.resolve(import.meta.dirname, "../../cli/src/bin.ts")

const rssAnonKiB = (pid: number): number => {
  try {
    const m = /RssAnon:\s+(\d+)/.exec(NFS.readFileSync(`/proc/${pid}/status`, "utf8"))
    return m === null ? 0 : Number(m[1])
  } catch {
    return 0
  }
}

/** Samples a process's RssAnon until stopped; returns the peak in MiB. */
const sampler = (pid: number) => {
  let peak = 0
  const timer = setInterval(() => (peak = Math.max(peak, rssAnonKiB(pid))), 50)
  timer.unref()
  return {
    stop: () => {
      clearInterval(timer)
      return peak / 1024
    }
  }
}

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
  const dir = NPath.join(root, "src")
  NFS.mkdirSync(dir)
  const data = NPath.join(dir, "data.bin")
  const fd = NFS.openSync(data, "w")
  const chunk = Buffer.alloc(16 * 1024 * 1024)
  for (let i = 0; i < mib / 16; i++) {
    for (let j = 0; j < chunk.length; j += 4) chunk.writeUInt32LE((i * 2654435761 + j * 40503) >>> 0, j)
    NFS.writeSync(fd, chunk)
  }
  NFS.closeSync(fd)
  const meta = yield* Create.fromPath(data, { pieceLength: 1024 * 1024 }).pipe(Effect.provide(Hasher.layer()))
  const torrent = NPath.join(root, "data.torrent")
  NFS.writeFileSync(torrent, Metainfo.encode(meta))
  NFS.readFileSync(data) // warm the page cache for both seeders

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
