// A preload for the ezio processes of a bench, to see what their anonymous memory is made of:
// `EZIO_BENCH_NODE_ARGS="--require $PWD/packages/peer/bench/heapLog.cjs"` (or EZIO_CPU_NODE_ARGS).
// Each `ezio seed` or `ezio download` writes, into EZIO_HEAP_LOG_DIR (default os.tmpdir()):
//   ROLE-PID.tsv     every 100 ms: RssAnon, process.memoryUsage() and V8's space sizes, in MiB
//   ROLE-PID.majors  after each mark-compact: ms since start, old space used / size in MiB
//   ROLE-PID.smaps   /proc/self/smaps at exit (V8's pages are its 256 KiB anonymous mappings,
//                    malloc's main arena is [heap])
// It adds a little to what it measures (its own samples and timer). Used for the peer README's
// "Memory at 4 GiB". CommonJS for `--require`: `--import` starts the ES module loader, and that
// alone added ~15 MiB of RssAnon to an ezio process.
"use strict"
const NFS = require("node:fs")
const NOS = require("node:os")
const NPath = require("node:path")
const NPerf = require("node:perf_hooks")
const NV8 = require("node:v8")

const role = process.argv.includes("seed")
  ? "seed"
  : process.argv.includes("download")
    ? "download"
    : undefined
if (role !== undefined) {
  const base = NPath.join(process.env.EZIO_HEAP_LOG_DIR ?? NOS.tmpdir(), `${role}-${process.pid}`)
  const t0 = performance.now()
  const ms = () => Math.round(performance.now() - t0)
  const mib = (bytes) => (bytes / 1048576).toFixed(1)
  const rssAnon = () =>
    Number(/RssAnon:\s+(\d+)/.exec(NFS.readFileSync("/proc/self/status", "utf8"))?.[1] ?? 0) * 1024
  const spaces = ["old_space", "new_space", "code_space", "large_object_space"]
  const lines = [["ms", "rssAnon", "heapTotal", "heapUsed", ...spaces, "external", "arrayBuffers"].join("\t")]
  const sample = () => {
    const m = process.memoryUsage()
    const size = new Map(NV8.getHeapSpaceStatistics().map((s) => [s.space_name, s.space_size]))
    const row = [
      rssAnon(),
      m.heapTotal,
      m.heapUsed,
      ...spaces.map((s) => size.get(s) ?? 0),
      m.external,
      m.arrayBuffers
    ]
    lines.push([ms(), ...row.map(mib)].join("\t"))
  }
  const flush = () => {
    NFS.appendFileSync(`${base}.tsv`, lines.join("\n") + "\n")
    lines.length = 0
  }
  const majors = []
  new NPerf.PerformanceObserver((list) => {
    for (const entry of list.getEntries()) {
      if (entry.detail?.kind !== NPerf.constants.NODE_PERFORMANCE_GC_MAJOR) continue
      const old = NV8.getHeapSpaceStatistics().find((s) => s.space_name === "old_space")
      majors.push(`${ms()}:${mib(old.space_used_size)}/${mib(old.space_size)}`)
    }
  }).observe({ entryTypes: ["gc"] })
  let ticks = 0
  setInterval(() => {
    sample()
    if (++ticks % 10 === 0) flush()
  }, 100).unref()
  process.on("exit", () => {
    sample()
    flush()
    NFS.writeFileSync(`${base}.majors`, majors.join(" ") + "\n")
    NFS.writeFileSync(`${base}.smaps`, NFS.readFileSync("/proc/self/smaps"))
  })
}
