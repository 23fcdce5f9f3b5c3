/**
 * One fair comparison of seeding and downloading over 127.0.0.1: every seeder against every
 * downloader, each a process of its own.
 *
 *   seeders:     ezio seed (the CLI), libtorrent default settings, libtorrent high_performance_seed
 *   downloaders: libtorrent default settings, libtorrent high_performance_seed, ezio download
 *
 * libtorrent is Debian's python3-libtorrent at its default settings or its high_performance_seed()
 * preset, as users run it (the tests' tuned downloader stays out). Rounds are interleaved: each
 * round visits every cell, starting one cell further on. For every cell the bench prints the median
 * MiB/s and its range, CPU seconds per GiB of each process (utime + stime of /proc/PID/stat, all
 * threads, over the transfer) with its system part, and each process's peak RssAnon; then a transmission row (each seeder
 * dials transmission-cli, which cannot dial out: its steady rate from the seeder's byte counter),
 * and the goals beside the figures. Every download is checked byte-identical to the source outside
 * the timing. Before every cell the bench writes and deletes a file of the transfer's size + 256 MiB
 * (EZIO_BENCH_WARM_MIB, 0: off): on a VM that hands freed memory back to its host, a cell landing on
 * handed-back pages paid ~2.9 s of system time per GiB written, to whichever process wrote them.
 *
 *   pnpm --filter @ezio/peer bench
 *     EZIO_BENCH_MIB=1024  EZIO_BENCH_ROUNDS=3  EZIO_BENCH_POOL=64MiB  EZIO_BENCH_TRANSMISSION_MIB=256 (0: skip)
 *     EZIO_BENCH_DIR=/dev/shm if it exists (tmpfs: ezio's final fsync and libtorrent's lazy writeback
 *     cost the same, nothing), else os.tmpdir()
 *     EZIO_BENCH_NODE_ARGS="--cpu-prof --cpu-prof-dir=/tmp/prof" for the ezio processes
 *     EZIO_BENCH_ONLY=ezio-seed,lt-hps-seed runs only some cells (default: all): comma separated,
 *       SEEDER-seed a row, DOWNLOADER-download a column, SEEDER:DOWNLOADER one cell, transmission
 *       the transmission row (names: ezio, lt-default, lt-hps)
 *     ezio runs as the installed command does: the one-file bundle with its code cache (this
 *       script runs `node scripts/bundle.mjs` first), so tsx's compiling is in neither its CPU
 *       nor its memory; EZIO_BENCH_CLI=tsx runs the sources through tsx instead
 *     EZIO_BENCH_EZIO="old.cjs new.cjs" runs ezio from these bundles (`node scripts/bundle.mjs FILE`)
 *       instead; several are an A/B: every ezio cell runs each in turn,
 *       the order alternating from round to round, and the tables get a row or column per bundle
 */
import * as NChild from "node:child_process"
import * as NFS from "node:fs"
import * as NOS from "node:os"
import * as NPath from "node:path"
import { Deferred, Duration, Effect, Fiber, type Scope } from "effect"
import {
  cpuSeconds,
  cpuSplit,
  ezioSeedArgs,
  identical,
  listening,
  makeSource,
  median,
  sampler,
  warmMemory
} from "./support.js"
import {
  freePort,
  hasLibtorrent,
  hasTransmission,
  libtorrentDownload,
  libtorrentSeed,
  spawnScoped,
  transmissionDownload
} from "@ezio/test-support/clients"

const mib = Number(process.env.EZIO_BENCH_MIB ?? 1024)
const rounds = Number(process.env.EZIO_BENCH_ROUNDS ?? 3)
const poolSize = process.env.EZIO_BENCH_POOL ?? "64MiB"
const poolMiB = parsePoolMiB(poolSize)
const transmissionMiB = Number(process.env.EZIO_BENCH_TRANSMISSION_MIB ?? 256)
const baseDir = process.env.EZIO_BENCH_DIR ?? (NFS.existsSync("/dev/shm") ? "/dev/shm" : NOS.tmpdir())
const nodeArgs = process.env.EZIO_BENCH_NODE_ARGS?.split(" ").filter((a) => a !== "") ?? []
const root = NFS.mkdtempSync(NPath.join(baseDir, "ezio-bench-matrix-"))
const cli = NPath.resolve(import.meta.dirname, "../../cli/src/bin.ts")
const bundles = process.env.EZIO_BENCH_EZIO?.split(" ").filter((a) => a !== "") ?? []
const only = process.env.EZIO_BENCH_ONLY?.split(",")
  .map((a) => a.trim())
  .filter((a) => a !== "")
const timeoutMs = 120_000 + mib * 250
const warmMiB = Number(process.env.EZIO_BENCH_WARM_MIB ?? mib + 256)

function parsePoolMiB(text: string): number {
  const m = /^(\d+(?:\.\d+)?)\s*(k|m|g)?i?b?$/i.exec(text.trim())
  if (m === null) return NaN
  const unit = (m[2] ?? "").toLowerCase()
  return Number(m[1]) * (unit === "g" ? 1024 : unit === "m" ? 1 : unit === "k" ? 1 / 1024 : 1 / 1048576)
}

type Seeder = "ezio" | "lt-default" | "lt-hps"
type Downloader = "lt-default" | "lt-hps" | "ezio"
const SEEDERS: ReadonlyArray<Seeder> = ["ezio", "lt-default", "lt-hps"]
const DOWNLOADERS: ReadonlyArray<Downloader> = ["lt-default", "lt-hps", "ezio"]
const NAME: Record<Seeder | Downloader, string> = {
  ezio: "ezio",
  "lt-default": "libtorrent default",
  "lt-hps": "libtorrent high_performance_seed"
}

/** How ezio runs: the node arguments before its own; `label` tells bundles apart in the tables. */
interface Ezio {
  readonly label: string
  readonly script: ReadonlyArray<string>
}
const useTsx = process.env.EZIO_BENCH_CLI === "tsx"
const repo = NPath.resolve(import.meta.dirname, "../../..")
const EZIOS: ReadonlyArray<Ezio> =
  bundles.length > 0
    ? bundles.map((file) => ({ label: NPath.basename(file), script: [NPath.resolve(file)] }))
    : useTsx
      ? [{ label: "", script: ["--import", "tsx", cli] }]
      : [{ label: "", script: [NPath.join(repo, "packages/cli/bin/run-bundle.cjs")] }]
const ezioName = (ezio: Ezio) => (EZIOS.length > 1 ? `ezio ${ezio.label}` : "ezio")

const selected = (seeder: string, downloader: string) =>
  only === undefined ||
  only.some(
    (o) => o === `${seeder}-seed` || o === `${downloader}-download` || o === `${seeder}:${downloader}`
  )
const preset = (kind: "lt-default" | "lt-hps") => (kind === "lt-default" ? "default" : "high-performance")

interface Source {
  readonly dir: string
  readonly data: string
  readonly torrent: string
  readonly mib: number
}

/** One transfer's figures. */
interface Run {
  readonly mibps: number
  readonly seederCpuPerGiB: number
  readonly downloaderCpuPerGiB: number
  /** The system parts of the two above. */
  readonly seederSysPerGiB: number
  readonly downloaderSysPerGiB: number
  readonly seederAnonMiB: number
  readonly downloaderAnonMiB: number
  /** A libtorrent downloader's seconds from adding the torrent to the first payload byte. */
  readonly firstByteSeconds: number
}

/** A seeder process, listening; `latest` is its last reported upload counter (t in seconds). */
interface Running {
  readonly pid: number
  readonly port: number
  readonly latest: () => { readonly t: number; readonly uploaded: number } | undefined
}

const ezioProcess = (ezio: Ezio, args: ReadonlyArray<string>, onLine: (line: string) => void) =>
  spawnScoped(process.execPath, [...nodeArgs, ...ezio.script, ...args], { onLine })

const jsonLine = (line: string): Record<string, unknown> | undefined => {
  if (!line.startsWith("{")) return undefined
  try {
    return JSON.parse(line) as Record<string, unknown>
  } catch {
    return undefined
  }
}

const startSeeder = (
  kind: Seeder,
  ezio: Ezio,
  source: Source,
  dial: ReadonlyArray<number> = []
): Effect.Effect<Running, Error, Scope.Scope> => {
  if (kind !== "ezio")
    return libtorrentSeed({
      torrent: source.torrent,
      saveDir: source.dir,
      preset: preset(kind),
      noTrackers: true,
      peers: dial,
      timeoutMs: timeoutMs * 4
    }).pipe(
      Effect.map((s) => ({
        pid: s.pid,
        port: s.port,
        latest: () => {
          const st = s.status()
          return st === undefined ? undefined : { t: Number(st["t"]), uploaded: Number(st["uploaded"]) }
        }
      })),
      Effect.mapError((e) => new Error(`${e.message}: ${e.stderr ?? ""}`))
    )
  return Effect.gen(function* () {
    const ready = yield* Deferred.make<number>()
    let latest: { t: number; uploaded: number } | undefined
    const child = yield* ezioProcess(
      ezio,
      [
        ...ezioSeedArgs(source.torrent, source.data, poolSize),
        ...dial.flatMap((p) => ["--peer", `127.0.0.1:${p}`])
      ],
      (line) => {
        const o = jsonLine(line)
        if (o?.["event"] === "ready")
          Deferred.unsafeDone(ready, Effect.succeed(Number(String(o["listen"]).split(":").pop())))
        else if (o?.["event"] === "status")
          latest = { t: performance.now() / 1000, uploaded: Number(o["uploaded"]) }
      }
    )
    const port = yield* Effect.raceFirst(
      Deferred.await(ready),
      Effect.flatMap(child.exited, (code) =>
        Effect.fail(new Error(`ezio seed exited with ${code}: ${child.stderr()}`))
      )
    ).pipe(Effect.timeoutFail({ duration: "60 seconds", onTimeout: () => new Error("ezio seed: not ready") }))
    return { pid: child.pid, port, latest: () => latest }
  })
}

const freshDir = () => NFS.mkdtempSync(NPath.join(root, "out-"))

/** Downloads from `port`; MiB/s over the downloader's own window, its CPU over that window. */
const download = (kind: Downloader, ezio: Ezio, source: Source, port: number) =>
  Effect.gen(function* () {
    const out = freshDir()
    yield* Effect.addFinalizer(() => Effect.sync(() => NFS.rmSync(out, { recursive: true, force: true })))
    const copy = NPath.join(out, NPath.basename(source.data))
    if (kind !== "ezio") {
      let memory: ReturnType<typeof sampler> | undefined
      const summary = yield* libtorrentDownload({
        torrent: source.torrent,
        saveDir: out,
        peers: [port],
        timeoutMs,
        preset: preset(kind),
        onSpawn: (pid) => (memory = sampler(pid))
      }).pipe(Effect.mapError((e) => new Error(`${e.message}: ${e.stderr ?? ""}`)))
      const anon = memory?.stop() ?? 0
      if (!summary.done || summary.hash_failures !== 0 || !identical(copy, source.data))
        return yield* Effect.fail(new Error(`libtorrent download failed: ${JSON.stringify(summary)}`))
      const firstByte = summary.seconds - (summary.transfer_seconds ?? summary.seconds)
      return {
        seconds: summary.seconds,
        cpu: summary.cpu_seconds,
        sys: summary.cpu_system_seconds ?? NaN,
        anon,
        firstByte
      }
    }
    let readyAt = 0
    let completeAt = 0
    let cpuAtReady = { user: 0, sys: 0 }
    let cpuAtComplete = { user: 0, sys: 0 }
    let pid = 0
    const child = yield* ezioProcess(
      ezio,
      [
        "download",
        source.torrent,
        copy,
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
      (line) => {
        if (line.includes('"event":"ready"')) {
          readyAt = performance.now()
          cpuAtReady = cpuSplit(pid) ?? cpuAtReady
        } else if (line.includes('"event":"complete"')) {
          completeAt = performance.now()
          cpuAtComplete = cpuSplit(pid) ?? cpuAtComplete
        }
      }
    )
    pid = child.pid
    const memory = sampler(pid)
    const code = yield* child.exited
    const anon = memory.stop()
    if (code !== 0 || completeAt === 0 || !identical(copy, source.data))
      return yield* Effect.fail(new Error(`ezio download exited with ${code}: ${child.stderr()}`))
    return {
      seconds: (completeAt - readyAt) / 1000,
      cpu: cpuAtComplete.user + cpuAtComplete.sys - cpuAtReady.user - cpuAtReady.sys,
      sys: cpuAtComplete.sys - cpuAtReady.sys,
      anon,
      firstByte: NaN
    }
  }).pipe(Effect.scoped)

const cell = (
  seeder: Seeder,
  downloader: Downloader,
  ezio: Ezio,
  source: Source
): Effect.Effect<Run, Error> =>
  Effect.gen(function* () {
    warmMemory(root, warmMiB)
    const running = yield* startSeeder(seeder, ezio, source)
    const memory = sampler(running.pid)
    const before = cpuSplit(running.pid) ?? { user: 0, sys: 0 }
    const d = yield* download(downloader, ezio, source, running.port)
    const after = cpuSplit(running.pid) ?? before
    const gib = source.mib / 1024
    return {
      mibps: source.mib / d.seconds,
      seederCpuPerGiB: (after.user + after.sys - before.user - before.sys) / gib,
      downloaderCpuPerGiB: d.cpu / gib,
      seederSysPerGiB: (after.sys - before.sys) / gib,
      downloaderSysPerGiB: d.sys / gib,
      seederAnonMiB: memory.stop(),
      downloaderAnonMiB: d.anon,
      firstByteSeconds: d.firstByte
    } satisfies Run
  }).pipe(Effect.scoped)

/**
 * `seeder` dials a transmission-cli downloader; its steady rate is read from the seeder's own
 * upload counter (first to last report while the transfer is under way), past transmission's
 * start-up and ramp.
 */
const transmissionCell = (
  seeder: "ezio" | "lt-default",
  ezio: Ezio,
  source: Source
): Effect.Effect<Run, Error> =>
  Effect.gen(function* () {
    if (warmMiB > 0) warmMemory(root, source.mib + 256)
    const listenPort = yield* freePort
    const out = freshDir()
    yield* Effect.addFinalizer(() => Effect.sync(() => NFS.rmSync(out, { recursive: true, force: true })))
    const receiving = yield* Effect.fork(
      transmissionDownload({ torrent: source.torrent, dir: out, listenPort, timeoutMs })
    )
    for (let i = 0; i < 100 && !listening(listenPort); i++) yield* Effect.sleep("100 millis")
    const running = yield* startSeeder(seeder, ezio, source, [listenPort])
    const memory = sampler(running.pid)
    const cpuBefore = cpuSeconds(running.pid) ?? 0
    const total = source.mib * 1048576
    const samples: Array<{ t: number; uploaded: number }> = []
    const poll = Effect.sync(() => {
      const s = running.latest()
      if (s !== undefined && s.uploaded > 0 && s.uploaded < total && samples.at(-1)?.t !== s.t)
        samples.push(s)
    })
    const polling = yield* Effect.fork(Effect.forever(Effect.zipRight(poll, Effect.sleep("200 millis"))))
    const result = yield* Fiber.join(receiving).pipe(Effect.mapError((e) => new Error(e.message)))
    yield* Fiber.interrupt(polling)
    const seederCpu = (cpuSeconds(running.pid) ?? 0) - cpuBefore
    if (!result.done || !identical(NPath.join(out, NPath.basename(source.data)), source.data))
      return yield* Effect.fail(new Error(`transmission download failed: ${result.stdout} ${result.stderr}`))
    const first = samples[0]
    const last = samples.at(-1)
    const mibps =
      first !== undefined && last !== undefined && last.t > first.t
        ? (last.uploaded - first.uploaded) / 1048576 / (last.t - first.t)
        : source.mib / result.seconds
    return {
      mibps,
      seederCpuPerGiB: seederCpu / (source.mib / 1024),
      downloaderCpuPerGiB: NaN,
      seederSysPerGiB: NaN,
      downloaderSysPerGiB: NaN,
      seederAnonMiB: memory.stop(),
      downloaderAnonMiB: NaN,
      firstByteSeconds: NaN
    } satisfies Run
  }).pipe(Effect.scoped)

// -------------------------------------------------------------------------------------------- report

const fmt = (x: number, digits = 0) => (Number.isFinite(x) ? x.toFixed(digits) : "–")
const spread = (xs: ReadonlyArray<number>, digits = 0) =>
  xs.length > 1
    ? `${fmt(median(xs), digits)} (${fmt(Math.min(...xs), digits)}–${fmt(Math.max(...xs), digits)})`
    : fmt(xs[0] ?? NaN, digits)

const results = new Map<string, Array<Run>>()
/** A cell's runs; `ezio` tells bundles apart where ezio is one of the two. */
const key = (s: string, d: string, ezio: Ezio) =>
  s === "ezio" || d === "ezio" ? `${s}→${d}@${ezio.label}` : `${s}→${d}`
const runsOf = (s: string, d: string, ezio: Ezio = EZIOS[0]!) => results.get(key(s, d, ezio)) ?? []

/** The table's rows and columns: ezio once per bundle. */
interface Side {
  readonly kind: Seeder | Downloader
  readonly ezio: Ezio | undefined
  readonly name: string
}
const sides = (kinds: ReadonlyArray<Seeder | Downloader>): ReadonlyArray<Side> =>
  kinds.flatMap((kind): ReadonlyArray<Side> =>
    kind === "ezio"
      ? EZIOS.map((ezio) => ({ kind, ezio, name: ezioName(ezio) }))
      : [{ kind, ezio: undefined, name: NAME[kind] }]
  )

const table = (title: string, show: (runs: ReadonlyArray<Run>) => string) => {
  console.log(`\n${title}\n`)
  const columns = sides(DOWNLOADERS)
  console.log(`| seeder ↓ downloader → | ${columns.map((d) => d.name).join(" | ")} |`)
  console.log(`| --- | ${columns.map(() => "---:").join(" | ")} |`)
  for (const s of sides(SEEDERS)) {
    const shown = columns.map((d) =>
      s.ezio !== undefined && d.ezio !== undefined && s.ezio !== d.ezio
        ? "–"
        : show(runsOf(s.kind, d.kind, s.ezio ?? d.ezio))
    )
    console.log(`| ${s.name} | ${shown.join(" | ")} |`)
  }
}

/** The goals for one ezio build. */
const goalsOf = (ezio: Ezio): Array<[string, number, number, boolean]> => {
  const goals: Array<[string, number, number, boolean]> = []
  const runs = (s: string, d: string) => runsOf(s, d, ezio)
  const med = (s: string, d: string, f: (r: Run) => number) => median(runs(s, d).map(f))
  const rate = (s: string, d: string) => med(s, d, (r) => r.mibps)
  const ratio = (name: string, ours: number, theirs: number, need = 1.1) =>
    goals.push([name, ours, theirs, ours >= need * theirs])
  for (const d of ["lt-default", "lt-hps"] as const)
    ratio(`ezio seed ≥ 1.1 × libtorrent hps seed, to ${NAME[d]}`, rate("ezio", d), rate("lt-hps", d))
  for (const s of SEEDERS)
    ratio(
      `ezio download ≥ 1.1 × best libtorrent downloader, from ${NAME[s]}`,
      rate(s, "ezio"),
      Math.max(rate(s, "lt-default"), rate(s, "lt-hps"))
    )
  ratio("ezio → ezio ≥ 1.1 × libtorrent hps → libtorrent hps", rate("ezio", "ezio"), rate("lt-hps", "lt-hps"))
  for (const d of ["lt-default", "lt-hps"] as const) {
    const ours = med("ezio", d, (r) => r.seederCpuPerGiB)
    const theirs = med("lt-hps", d, (r) => r.seederCpuPerGiB)
    goals.push([`seeder CPU s/GiB ≤ libtorrent hps's, to ${NAME[d]}`, ours, theirs, ours <= theirs])
  }
  for (const s of SEEDERS) {
    const ours = med(s, "ezio", (r) => r.downloaderCpuPerGiB)
    const theirs = Math.min(
      med(s, "lt-default", (r) => r.downloaderCpuPerGiB),
      med(s, "lt-hps", (r) => r.downloaderCpuPerGiB)
    )
    goals.push([`downloader CPU s/GiB ≤ libtorrent's, from ${NAME[s]}`, ours, theirs, ours <= theirs])
  }
  const limit = poolMiB + 80
  const anon = Math.max(
    ...SEEDERS.flatMap((s) => runs(s, "ezio").map((r) => r.downloaderAnonMiB)),
    ...DOWNLOADERS.flatMap((d) => runs("ezio", d).map((r) => r.seederAnonMiB))
  )
  goals.push([`ezio peak RssAnon ≤ pool + 80 MiB (${fmt(limit)})`, anon, limit, anon <= limit])
  const tx = (s: string) => runs(s, "transmission")
  if (tx("ezio").length > 0) {
    const ours = median(tx("ezio").map((r) => r.mibps))
    const theirs = median(tx("lt-default").map((r) => r.mibps))
    goals.push(["to transmission ≥ libtorrent default's rate", ours, theirs, ours >= theirs])
  }
  return goals
}

const report = () => {
  console.log(
    `\n${mib} MiB file, 1 MiB pieces, 127.0.0.1, ${rounds} interleaved round(s), ezio pool ${poolSize}, files in ${baseDir}, ${warmMiB > 0 ? `${warmMiB} MiB warm-up before each cell` : "no warm-up"}; median (range)`
  )
  table("MiB/s", (runs) => spread(runs.map((r) => r.mibps)))
  table("CPU seconds per GiB: seeder / downloader", (runs) =>
    runs.length === 0
      ? "–"
      : `${fmt(median(runs.map((r) => r.seederCpuPerGiB)), 2)} / ${fmt(median(runs.map((r) => r.downloaderCpuPerGiB)), 2)}`
  )
  table("of which system (kernel copies, page faults): seeder / downloader", (runs) =>
    runs.length === 0
      ? "–"
      : `${fmt(median(runs.map((r) => r.seederSysPerGiB)), 2)} / ${fmt(median(runs.map((r) => r.downloaderSysPerGiB)), 2)}`
  )
  table("peak RssAnon MiB: seeder / downloader", (runs) =>
    runs.length === 0
      ? "–"
      : `${fmt(Math.max(...runs.map((r) => r.seederAnonMiB)))} / ${fmt(Math.max(...runs.map((r) => r.downloaderAnonMiB)))}`
  )
  console.log(
    `\nlibtorrent downloaders, seconds from adding the torrent to the first payload byte (in the MiB/s above): ${sides(
      SEEDERS
    )
      .map(
        (s) =>
          `from ${s.name} ${fmt(median(["lt-default", "lt-hps"].flatMap((d) => runsOf(s.kind, d, s.ezio).map((r) => r.firstByteSeconds))), 2)}`
      )
      .join(", ")}`
  )
  const txRows = [...sides(["ezio"]), ...sides(["lt-default"])]
  if (txRows.some((s) => runsOf(s.kind, "transmission", s.ezio).length > 0)) {
    console.log(
      `\nto transmission-cli (${transmissionMiB} MiB; steady rate from the seeder's upload counter)\n`
    )
    console.log("| seeder | MiB/s | seeder CPU s/GiB | seeder peak RssAnon MiB |")
    console.log("| --- | ---: | ---: | ---: |")
    for (const s of txRows) {
      const tx = runsOf(s.kind, "transmission", s.ezio)
      console.log(
        `| ${s.name} | ${spread(tx.map((r) => r.mibps))} | ${fmt(median(tx.map((r) => r.seederCpuPerGiB)), 1)} | ${fmt(Math.max(...tx.map((r) => r.seederAnonMiB)))} |`
      )
    }
  }
  for (const ezio of EZIOS) {
    const goals = goalsOf(ezio).filter(([, ours, theirs]) => Number.isFinite(ours) && Number.isFinite(theirs))
    if (goals.length === 0) continue
    console.log(
      `\n| goal${EZIOS.length > 1 ? ` (${ezioName(ezio)})` : ""} | ezio | libtorrent / limit | ratio | met |`
    )
    console.log("| --- | ---: | ---: | ---: | :---: |")
    for (const [name, ours, theirs, met] of goals)
      console.log(
        `| ${name} | ${fmt(ours, 2)} | ${fmt(theirs, 2)} | ${fmt(ours / theirs, 2)} | ${met ? "yes" : "NO"} |`
      )
  }
}

/** Runs one cell and records it. */
const record = (s: Seeder, d: Downloader | "transmission", ezio: Ezio, run: Run, round: number) => {
  results.set(key(s, d, ezio), [...runsOf(s, d, ezio), run])
  const name = (k: Seeder | Downloader) => (k === "ezio" ? ezioName(ezio) : NAME[k])
  const digits = d === "transmission" ? 1 : 0
  console.error(
    `round ${round + 1}: ${name(s)} → ${d === "transmission" ? d : name(d)}: ${fmt(run.mibps, digits)} MiB/s` +
      (d === "transmission"
        ? ""
        : `, CPU-s/GiB seeder ${fmt(run.seederCpuPerGiB, 2)} (sys ${fmt(run.seederSysPerGiB, 2)}), downloader ${fmt(run.downloaderCpuPerGiB, 2)} (sys ${fmt(run.downloaderSysPerGiB, 2)})`)
  )
}

const main = Effect.gen(function* () {
  if (!hasLibtorrent) {
    console.log(
      "python3-libtorrent is not installed (apt-get install -y python3-libtorrent): skipping the bench"
    )
    return
  }
  if (!useTsx && bundles.length === 0)
    NChild.execFileSync(process.execPath, [NPath.join(repo, "scripts/bundle.mjs")], { stdio: "inherit" })
  const made = yield* makeSource(NPath.join(root, "main"), mib)
  const source: Source = { ...made, mib }
  const withTransmission =
    hasTransmission && transmissionMiB > 0 && (only === undefined || only.includes("transmission"))
  const small: Source | undefined = withTransmission
    ? { ...(yield* makeSource(NPath.join(root, "transmission"), transmissionMiB)), mib: transmissionMiB }
    : undefined
  const cells = SEEDERS.flatMap((s) => DOWNLOADERS.map((d) => [s, d] as const)).filter(([s, d]) =>
    selected(s, d)
  )
  for (let round = 0; round < rounds; round++) {
    // Each round visits every cell, starting one further on, so no cell always runs first; the
    // ezio builds of an A/B run back to back, in an order that alternates from round to round.
    const builds = round % 2 === 0 ? EZIOS : [...EZIOS].reverse()
    for (let i = 0; i < cells.length; i++) {
      const [s, d] = cells[(i + round) % cells.length]!
      for (const ezio of s === "ezio" || d === "ezio" ? builds : [EZIOS[0]!])
        record(s, d, ezio, yield* cell(s, d, ezio, source), round)
    }
    if (small !== undefined)
      for (const s of round % 2 === 0 ? (["ezio", "lt-default"] as const) : (["lt-default", "ezio"] as const))
        for (const ezio of s === "ezio" ? builds : [EZIOS[0]!])
          record(s, "transmission", ezio, yield* transmissionCell(s, ezio, small), round)
  }
  report()
}).pipe(Effect.timeout(Duration.hours(6)))

Effect.runPromise(
  main.pipe(Effect.ensuring(Effect.sync(() => NFS.rmSync(root, { recursive: true, force: true }))))
).catch((error) => {
  console.error(error)
  process.exitCode = 1
})
