// Start-up to readiness: `node scripts/ready-time.mjs <command> [args...]` starts the command 10
// times (RUNS=n to change) and prints the median time from spawn to its JSON ready line
// (`"event":"ready"`, as `ezio seed --json` prints it), stopping each run with SIGTERM, and on
// Linux the median CPU time the process (all its threads) had used by then: what start-up costs
// when many processes start at once, whatever else the machine is doing.
import * as NChild from "node:child_process"
import * as NFS from "node:fs"

const [command, ...args] = process.argv.slice(2)
if (command === undefined) throw new Error("usage: node scripts/ready-time.mjs <command> [args...]")
const runs = Number(process.env.RUNS ?? 10)

/** utime + stime of a process in ms, from /proc (undefined elsewhere). */
const cpuMs = (pid) => {
  try {
    const fields = NFS.readFileSync(`/proc/${pid}/stat`, "utf8").split(") ")[1].split(" ")
    return ((Number(fields[11]) + Number(fields[12])) * 1000) / 100
  } catch {
    return undefined
  }
}

const once = () =>
  new Promise((resolve, reject) => {
    const started = performance.now()
    const child = NChild.spawn(command, args, { stdio: ["ignore", "pipe", "inherit"] })
    let out = ""
    let ready
    child.stdout.on("data", (data) => {
      out += data
      if (ready === undefined && out.includes('"event":"ready"')) {
        ready = [performance.now() - started, cpuMs(child.pid)]
        child.kill("SIGTERM")
      }
    })
    child.once("error", reject)
    child.once("exit", (code) =>
      ready === undefined ? reject(new Error(`exited with ${code} before ready`)) : resolve(ready)
    )
  })

const results = []
for (let i = 0; i < runs; i++) results.push(await once())
const median = (xs) => {
  const s = [...xs].sort((a, b) => a - b)
  return s.length % 2 === 1 ? s[(s.length - 1) / 2] : (s[s.length / 2 - 1] + s[s.length / 2]) / 2
}
const times = results.map((r) => r[0]).sort((a, b) => a - b)
const cpu = results.map((r) => r[1]).filter((c) => c !== undefined)
console.log(
  `ready after ${median(times).toFixed(0)} ms (median of ${runs}; min ${times[0].toFixed(0)}, max ${times[runs - 1].toFixed(0)})` +
    (cpu.length === runs ? `, CPU ${median(cpu).toFixed(0)} ms by then (median)` : "")
)
