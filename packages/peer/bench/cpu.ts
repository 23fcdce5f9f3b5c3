/**
 * CPU seconds per GiB of ezio's data path, both directions, against python3-libtorrent at its
 * default settings on 127.0.0.1 (DHT, LSD, UPnP and NAT-PMP off): CPU per byte stays meaningful on
 * a loaded machine where MiB/s does not.
 *
 *   download: a libtorrent seeder → `ezio download --exit`
 *   seed:     `ezio seed` → a libtorrent downloader
 *
 * For every run it prints each process's CPU seconds per GiB (utime + stime of /proc/PID/stat, all
 * threads, plus cutime + cstime of waited-for children) over the transfer, with its system part
 * ("sys": kernel copies and page faults), ezio's over its whole life too, and each process's peak
 * RssAnon (polled every 50 ms); then medians and ranges over the rounds. Every download is checked
 * byte-identical to the source.
 *
 * Before every run the bench writes and deletes a file of the transfer's size + 256 MiB in the
 * bench directory (EZIO_CPU_WARM_MIB, 0: off): on a VM that hands freed memory back to its host,
 * a round landing on handed-back pages paid ~2.9 s of system time per GiB written, to whichever
 * process wrote them, and that was most of the spread between rounds. The round line shows the
 * warm-up's own system seconds ("warm-up sys", ~0.35 per GiB when memory was already backed).
 *
 * ezio runs as the installed command does: the one-file bundle (`node scripts/bundle.mjs`, which
 * this script runs first, then `node packages/cli/bin/run-bundle.cjs`), so tsx's compiling is not
 * in the figures; EZIO_CPU_CLI=tsx runs the sources through tsx instead, EZIO_CPU_BUNDLE=FILE a
 * bundle built elsewhere (another commit's). EZIO_CPU_BUNDLE="A.cjs B.cjs" (several files, space
 * separated) is an A/B: every round runs each bundle in turn, the order alternating from round to
 * round, and the medians are printed per bundle, so a before/after shares the machine's state.
 * Copy a bundle away (cp packages/cli/build/bundle/ezio.cjs /tmp/before.cjs) to keep it. A file
 * may carry node flags of its own after commas, so one bundle with and without a V8 flag is an
 * A/B too: EZIO_CPU_BUNDLE="A.cjs A.cjs,--max-semi-space-size=32".
 *
 *   npx tsx packages/peer/bench/cpu.ts
 *     EZIO_CPU_MIB=1024  EZIO_CPU_ROUNDS=3  EZIO_CPU_POOL=64MiB  EZIO_CPU_ONLY=download|seed
 *     EZIO_CPU_DIR=/dev/shm if it exists, else os.tmpdir()
 *     EZIO_CPU_NODE_ARGS="--cpu-prof --cpu-prof-dir=/tmp/prof" for the ezio processes
 */
import * as NChild from "node:child_process"
import * as NFS from "node:fs"
import * as NOS from "node:os"
import * as NPath from "node:path"
import { Deferred, Effect } from "effect"
import { ezioSeedArgs, identical, makeSource, median, warmMemory } from "./support.js"
import { hasLibtorrent, libtorrentDownload, libtorrentSeed, spawnScoped } from "@ezio/test-support/clients"

const mib = Number(process.env.EZIO_CPU_MIB ?? 1024)
const rounds = Number(process.env.EZIO_CPU_ROUNDS ?? 3)
const poolSize = process.env.EZIO_CPU_POOL ?? "64MiB"
const only = process.env.EZIO_CPU_ONLY
const useTsx = process.env.EZIO_CPU_CLI === "tsx"
const prebuilt = process.env.EZIO_CPU_BUNDLE?.split(" ").filter((a) => a !== "") ?? []
const baseDir = process.env.EZIO_CPU_DIR ?? (NFS.existsSync("/dev/shm") ? "/dev/shm" : NOS.tmpdir())
const nodeArgs = process.env.EZIO_CPU_NODE_ARGS?.split(" ").filter((a) => a !== "") ?? []
const warmMiB = Number(process.env.EZIO_CPU_WARM_MIB ?? mib + 256)
const repo = NPath.resolve(import.meta.dirname, "../../..")
const timeoutMs = 120_000 + mib * 500
const gib = mib / 1024

const clockTicks = (() => {
  const n = Number(NChild.spawnSync("getconf", ["CLK_TCK"], { encoding: "utf8" }).stdout?.trim())
  return Number.isFinite(n) && n > 0 ? n : 100
})()

interface Cpu {
  readonly cpu: number
  readonly sys: number
}
const noCpu: Cpu = { cpu: 0, sys: 0 }

/** utime + stime (+ cutime + cstime) of a process and its system part, in seconds; undefined once it is gone. */
const cpuOf = (pid: number): Cpu | undefined => {
  try {
    const stat = NFS.readFileSync(`/proc/${pid}/stat`, "utf8")
    const f = stat.slice(stat.lastIndexOf(")") + 2).split(" ")
    return {
      cpu: (Number(f[11]) + Number(f[12]) + Number(f[13]) + Number(f[14])) / clockTicks,
      sys: (Number(f[12]) + Number(f[14])) / clockTicks
    }
  } catch {
    return undefined
  }
}

const anonMiBOf = (pid: number): number | undefined => {
  try {
    const m = /RssAnon:\s+(\d+)/.exec(NFS.readFileSync(`/proc/${pid}/status`, "utf8"))
    return m === null ? undefined : Number(m[1]) / 1024
  } catch {
    return undefined
  }
}

/**
 * CPU seconds per thread of a process: "main" (and "main-sys", its system part), else the thread's
 * name and tid - pid (libuv's pool, hashing workers, V8's helpers).
 */
const threadCpu = (pid: number): Map<string, number> => {
  const out = new Map<string, number>()
  try {
    for (const tid of NFS.readdirSync(`/proc/${pid}/task`)) {
      const stat = NFS.readFileSync(`/proc/${pid}/task/${tid}/stat`, "utf8")
      const name = stat.slice(stat.indexOf("(") + 1, stat.lastIndexOf(")"))
      const f = stat.slice(stat.lastIndexOf(")") + 2).split(" ")
      const key = tid === String(pid) ? "main" : `${name}+${Number(tid) - pid}`
      out.set(key, (out.get(key) ?? 0) + (Number(f[11]) + Number(f[12])) / clockTicks)
      if (tid === String(pid)) out.set("main-sys", Number(f[12]) / clockTicks)
    }
  } catch {
    // gone
  }
  return out
}

const threadLine = (before: Map<string, number>, after: Map<string, number>) =>
  [...after]
    .map(([name, cpu]) => [name, (cpu - (before.get(name) ?? 0)) / gib] as const)
    .filter(([, perGiB]) => perGiB >= 0.05)
    .sort((a, b) => b[1] - a[1])
    .map(([name, perGiB]) => `${name} ${perGiB.toFixed(2)}`)
    .join(", ")

/** Polls a process every 50 ms: its peak RssAnon and its CPU when last seen alive. */
const watch = (pid: number) => {
  let peak = 0
  let lastCpu = cpuOf(pid) ?? noCpu
  const poll = () => {
    peak = Math.max(peak, anonMiBOf(pid) ?? 0)
    lastCpu = cpuOf(pid) ?? lastCpu
  }
  const timer = setInterval(poll, 50)
  return {
    cpu: () => cpuOf(pid) ?? lastCpu,
    stop: () => {
      poll()
      clearInterval(timer)
      return { peakAnonMiB: peak, lastCpu }
    }
  }
}

/** What runs ezio: the node arguments before its own. */
interface Variant {
  readonly label: string
  readonly script: string
  /** Node flags of this variant alone, after EZIO_CPU_NODE_ARGS. */
  readonly flags: ReadonlyArray<string>
}

const variants: ReadonlyArray<Variant> = useTsx
  ? [{ label: "tsx sources", script: NPath.join(repo, "packages/cli/bin/ezio.mjs"), flags: [] }]
  : prebuilt.length > 0
    ? prebuilt.map((entry) => {
        const [file, ...flags] = entry.split(",")
        return { label: entry, script: NPath.resolve(file!), flags }
      })
    : [{ label: "bundle", script: NPath.join(repo, "packages/cli/bin/run-bundle.cjs"), flags: [] }]

const ezioArgs = (variant: Variant, args: ReadonlyArray<string>) => [
  ...nodeArgs,
  ...variant.flags,
  variant.script,
  ...args
]

const jsonEvent = (line: string): Record<string, unknown> | undefined => {
  if (!line.startsWith("{")) return undefined
  try {
    return JSON.parse(line) as Record<string, unknown>
  } catch {
    return undefined
  }
}

interface Run {
  readonly ezioCpuPerGiB: number
  readonly ezioSysPerGiB: number
  readonly ezioTotalCpuPerGiB: number
  readonly libtorrentCpuPerGiB: number
  readonly libtorrentSysPerGiB: number
  readonly ezioAnonMiB: number
  readonly libtorrentAnonMiB: number
  readonly seconds: number
  /** ezio's CPU seconds per GiB by thread over the transfer. */
  readonly threads: string
  /** The warm-up's system seconds before this run. */
  readonly warmSys: number
}

interface Source {
  readonly dir: string
  readonly data: string
  readonly torrent: string
}

/** A libtorrent seeder (default settings) → `ezio download --exit`. */
const downloadRun = (source: Source, root: string, variant: Variant) =>
  Effect.gen(function* () {
    const seeder = yield* libtorrentSeed({
      torrent: source.torrent,
      saveDir: source.dir,
      preset: "default",
      noTrackers: true,
      timeoutMs: timeoutMs * 2
    }).pipe(Effect.mapError((e) => new Error(`${e.message}: ${e.stderr ?? ""}`)))
    const lt = watch(seeder.pid)
    const out = NFS.mkdtempSync(NPath.join(root, "out-"))
    yield* Effect.addFinalizer(() => Effect.sync(() => NFS.rmSync(out, { recursive: true, force: true })))
    const copy = NPath.join(out, NPath.basename(source.data))
    let pid = 0
    let at = { ready: 0, complete: 0, cpuReady: noCpu, cpuComplete: noCpu, ltReady: noCpu, ltComplete: noCpu }
    let threadsReady = new Map<string, number>()
    let threads = ""
    const child = yield* spawnScoped(
      process.execPath,
      ezioArgs(variant, [
        "download",
        source.torrent,
        copy,
        "--bind",
        "127.0.0.1",
        "--port",
        "0",
        "--peer",
        `127.0.0.1:${seeder.port}`,
        "--exit",
        "--json",
        "--pool-size",
        poolSize
      ]),
      {
        onLine: (line) => {
          const event = jsonEvent(line)?.["event"]
          if (event === "ready") {
            at = { ...at, ready: performance.now(), cpuReady: cpuOf(pid) ?? noCpu, ltReady: lt.cpu() }
            threadsReady = threadCpu(pid)
          } else if (event === "complete") {
            at = {
              ...at,
              complete: performance.now(),
              cpuComplete: cpuOf(pid) ?? noCpu,
              ltComplete: lt.cpu()
            }
            threads = threadLine(threadsReady, threadCpu(pid))
          }
        }
      }
    )
    pid = child.pid
    const ezio = watch(pid)
    const code = yield* child.exited
    const e = ezio.stop()
    const l = lt.stop()
    if (code !== 0 || at.complete === 0 || !identical(copy, source.data))
      return yield* Effect.fail(new Error(`ezio download exited with ${code}: ${child.stderr()}`))
    return {
      ezioCpuPerGiB: (at.cpuComplete.cpu - at.cpuReady.cpu) / gib,
      ezioSysPerGiB: (at.cpuComplete.sys - at.cpuReady.sys) / gib,
      ezioTotalCpuPerGiB: e.lastCpu.cpu / gib,
      libtorrentCpuPerGiB: (at.ltComplete.cpu - at.ltReady.cpu) / gib,
      libtorrentSysPerGiB: (at.ltComplete.sys - at.ltReady.sys) / gib,
      ezioAnonMiB: e.peakAnonMiB,
      libtorrentAnonMiB: l.peakAnonMiB,
      seconds: (at.complete - at.ready) / 1000,
      threads,
      warmSys: 0
    } satisfies Run
  }).pipe(Effect.scoped)

/** `ezio seed` → a libtorrent downloader (default settings). */
const seedRun = (source: Source, root: string, variant: Variant) =>
  Effect.gen(function* () {
    const ready = yield* Deferred.make<number>()
    const child = yield* spawnScoped(
      process.execPath,
      ezioArgs(variant, [...ezioSeedArgs(source.torrent, source.data, poolSize)]),
      {
        onLine: (line) => {
          const o = jsonEvent(line)
          if (o?.["event"] === "ready")
            Deferred.unsafeDone(ready, Effect.succeed(Number(String(o["listen"]).split(":").pop())))
        }
      }
    )
    const port = yield* Effect.raceFirst(
      Deferred.await(ready),
      Effect.flatMap(child.exited, (code) =>
        Effect.fail(new Error(`ezio seed exited with ${code}: ${child.stderr()}`))
      )
    ).pipe(Effect.timeoutFail({ duration: "60 seconds", onTimeout: () => new Error("ezio seed: not ready") }))
    const ezio = watch(child.pid)
    const out = NFS.mkdtempSync(NPath.join(root, "out-"))
    yield* Effect.addFinalizer(() => Effect.sync(() => NFS.rmSync(out, { recursive: true, force: true })))
    let ltPid = 0
    let lt: ReturnType<typeof watch> | undefined
    const cpuBefore = ezio.cpu()
    const threadsBefore = threadCpu(child.pid)
    const summary = yield* libtorrentDownload({
      torrent: source.torrent,
      saveDir: out,
      peers: [port],
      timeoutMs,
      preset: "default",
      onSpawn: (p) => {
        ltPid = p
        lt = watch(p)
      }
    }).pipe(Effect.mapError((e) => new Error(`${e.message}: ${e.stderr ?? ""}`)))
    const cpuAfter = ezio.cpu()
    const threads = threadLine(threadsBefore, threadCpu(child.pid))
    const e = ezio.stop()
    const l = lt?.stop()
    if (!summary.done || summary.hash_failures !== 0 || ltPid === 0)
      return yield* Effect.fail(new Error(`libtorrent download failed: ${JSON.stringify(summary)}`))
    if (!identical(NPath.join(out, NPath.basename(source.data)), source.data))
      return yield* Effect.fail(new Error("libtorrent's copy differs from the source"))
    return {
      ezioCpuPerGiB: (cpuAfter.cpu - cpuBefore.cpu) / gib,
      ezioSysPerGiB: (cpuAfter.sys - cpuBefore.sys) / gib,
      ezioTotalCpuPerGiB: e.lastCpu.cpu / gib,
      libtorrentCpuPerGiB: summary.cpu_seconds / gib,
      libtorrentSysPerGiB: (summary.cpu_system_seconds ?? NaN) / gib,
      ezioAnonMiB: e.peakAnonMiB,
      libtorrentAnonMiB: l?.peakAnonMiB ?? NaN,
      seconds: summary.seconds,
      threads,
      warmSys: 0
    } satisfies Run
  }).pipe(Effect.scoped)

const f = (x: number, d = 2) => (Number.isFinite(x) ? x.toFixed(d) : "–")
const line = (name: string, r: Run) =>
  `${name}: ezio ${f(r.ezioCpuPerGiB)} CPU-s/GiB (sys ${f(r.ezioSysPerGiB)}; whole process ${f(r.ezioTotalCpuPerGiB)}), libtorrent ${f(r.libtorrentCpuPerGiB)} (sys ${f(r.libtorrentSysPerGiB)}); peak RssAnon ezio ${f(r.ezioAnonMiB, 0)} MiB, libtorrent ${f(r.libtorrentAnonMiB, 0)} MiB; ${f(r.seconds, 1)} s${r.threads === "" ? "" : `; ezio by thread: ${r.threads}`}${warmMiB > 0 && r.warmSys > 0 ? `; warm-up sys ${f(r.warmSys)} s` : ""}`
const range = (xs: ReadonlyArray<number>) => `${f(Math.min(...xs))}–${f(Math.max(...xs))}`

const main = Effect.gen(function* () {
  if (!hasLibtorrent) {
    console.log("python3-libtorrent is not installed (apt-get install -y python3-libtorrent): skipping")
    return
  }
  if (!useTsx && prebuilt.length === 0)
    NChild.execFileSync(process.execPath, [NPath.join(repo, "scripts/bundle.mjs")], { stdio: "inherit" })
  const root = NFS.mkdtempSync(NPath.join(baseDir, "ezio-bench-cpu-"))
  try {
    const source = yield* makeSource(root, mib)
    const kinds = (["download", "seed"] as const).filter((k) => only === undefined || only === k)
    const runs = new Map<string, Array<Run>>()
    for (let round = 0; round < rounds; round++)
      for (const kind of round % 2 === 0 ? kinds : [...kinds].reverse())
        for (const variant of round % 2 === 0 ? variants : [...variants].reverse()) {
          const warmSys = warmMemory(root, warmMiB)
          const r = {
            ...(yield* kind === "download"
              ? downloadRun(source, root, variant)
              : seedRun(source, root, variant)),
            warmSys
          }
          const key = `${kind}\t${variant.label}`
          runs.set(key, [...(runs.get(key) ?? []), r])
          const name = variants.length > 1 ? `${kind} ${variant.label}` : kind
          console.error(line(`round ${round + 1} ${name}`, r))
        }
    console.log(
      `\n${mib} MiB, 1 MiB pieces, 127.0.0.1, libtorrent default settings, ezio pool ${poolSize}, ${variants.map((v) => v.label).join(" vs ")}, files in ${baseDir}, ${warmMiB > 0 ? `${warmMiB} MiB warm-up before each run` : "no warm-up"}; median of ${rounds}${variants.length > 1 ? ", interleaved" : ""}`
    )
    for (const kind of kinds)
      for (const variant of variants) {
        const rs = runs.get(`${kind}\t${variant.label}`)!
        const med = (g: (r: Run) => number) => median(rs.map(g))
        const name = kind === "download" ? "libtorrent → ezio download" : "ezio seed → libtorrent"
        console.log(
          line(variants.length > 1 ? `${name} [${variant.label}]` : name, {
            ezioCpuPerGiB: med((r) => r.ezioCpuPerGiB),
            ezioSysPerGiB: med((r) => r.ezioSysPerGiB),
            ezioTotalCpuPerGiB: med((r) => r.ezioTotalCpuPerGiB),
            libtorrentCpuPerGiB: med((r) => r.libtorrentCpuPerGiB),
            libtorrentSysPerGiB: med((r) => r.libtorrentSysPerGiB),
            ezioAnonMiB: Math.max(...rs.map((r) => r.ezioAnonMiB)),
            libtorrentAnonMiB: Math.max(...rs.map((r) => r.libtorrentAnonMiB)),
            seconds: med((r) => r.seconds),
            threads: "",
            warmSys: 0
          })
        )
        console.log(
          `  ranges: ezio ${range(rs.map((r) => r.ezioCpuPerGiB))} (sys ${range(rs.map((r) => r.ezioSysPerGiB))}), libtorrent ${range(rs.map((r) => r.libtorrentCpuPerGiB))} (sys ${range(rs.map((r) => r.libtorrentSysPerGiB))})`
        )
      }
  } finally {
    NFS.rmSync(root, { recursive: true, force: true })
  }
})

Effect.runPromise(main).catch((error) => {
  console.error(error)
  process.exitCode = 1
})
