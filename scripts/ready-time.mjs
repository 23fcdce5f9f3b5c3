// Start-up to readiness: `node scripts/ready-time.mjs <command> [args...]` starts the command 10
// times (RUNS=n to change) and prints the median time from spawn to its JSON ready line
// (`"event":"ready"`, as `ezio seed --json` prints it), stopping each run with SIGTERM.
import * as NChild from "node:child_process"

const [command, ...args] = process.argv.slice(2)
if (command === undefined) throw new Error("usage: node scripts/ready-time.mjs <command> [args...]")
const runs = Number(process.env.RUNS ?? 10)

const once = () =>
  new Promise((resolve, reject) => {
    const started = performance.now()
    const child = NChild.spawn(command, args, { stdio: ["ignore", "pipe", "inherit"] })
    let out = ""
    let ready
    child.stdout.on("data", (data) => {
      out += data
      if (ready === undefined && out.includes('"event":"ready"')) {
        ready = performance.now() - started
        child.kill("SIGTERM")
      }
    })
    child.once("error", reject)
    child.once("exit", (code) =>
      ready === undefined ? reject(new Error(`exited with ${code} before ready`)) : resolve(ready)
    )
  })

const times = []
for (let i = 0; i < runs; i++) times.push(await once())
times.sort((a, b) => a - b)
const median = runs % 2 === 1 ? times[(runs - 1) / 2] : (times[runs / 2 - 1] + times[runs / 2]) / 2
console.log(
  `ready after ${median.toFixed(0)} ms (median of ${runs}; min ${times[0].toFixed(0)}, max ${times[runs - 1].toFixed(0)})`
)
