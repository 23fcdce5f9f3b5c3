// `pnpm build:sea`: one executable file, dist/ezio, for targets booted from a live image (nothing
// to install there): Node's single executable application over the bundle of scripts/bundle.mjs.
// The blob is made by this very `node` and injected into a copy of it, so dist/ezio runs the
// Node version that built it.
import * as NChild from "node:child_process"
import * as NFS from "node:fs"
import * as NPath from "node:path"
import postject from "postject"
import { bundle } from "./bundle.mjs"

const root = NPath.resolve(import.meta.dirname, "..")
const work = NPath.join(root, "build/sea")
const output = NPath.join(root, "dist/ezio")

const main = await bundle()
NFS.mkdirSync(work, { recursive: true })
const config = NPath.join(work, "sea-config.json")
const blob = NPath.join(work, "ezio.blob")
NFS.writeFileSync(
  config,
  JSON.stringify({ main, output: blob, disableExperimentalSEAWarning: true, useCodeCache: true }, null, 2)
)
NChild.execFileSync(process.execPath, ["--experimental-sea-config", config], { stdio: "inherit" })

NFS.mkdirSync(NPath.dirname(output), { recursive: true })
NFS.rmSync(output, { force: true })
NFS.copyFileSync(process.execPath, output)
NFS.chmodSync(output, 0o755)
await postject.inject(output, "NODE_SEA_BLOB", NFS.readFileSync(blob), {
  sentinelFuse: "NODE_SEA_FUSE_fce680ab2cc467b6e072b8b5df1996b2"
})
console.log(`${NPath.relative(root, output)}: ${(NFS.statSync(output).size / 1024 / 1024).toFixed(1)} MiB`)
