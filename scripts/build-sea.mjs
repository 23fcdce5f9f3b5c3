// `pnpm build:sea`: one executable file, dist/ezio, for targets booted from a live image (nothing
// to install there): Node's single executable application over the bundle of scripts/bundle.mjs,
// as a V8 startup snapshot of the heap once the bundle has been compiled (with its code cache)
// and evaluated (scripts/sea-main.cjs), so every start skips reading, compiling and evaluating
// it. The blob is made by this very `node` and injected into a copy of it, so dist/ezio runs the
// Node version that built it, and the code cache, made by the same Node, is always accepted.
import * as NChild from "node:child_process"
import * as NFS from "node:fs"
import * as NPath from "node:path"
import postject from "postject"
import * as esbuild from "esbuild"
import { bundle, cacheFile } from "./bundle.mjs"

const root = NPath.resolve(import.meta.dirname, "..")
const work = NPath.join(root, "build/sea")
const output = NPath.join(root, "dist/ezio")

const bundleFile = await bundle()
NFS.mkdirSync(work, { recursive: true })
// A single executable's main must be one CommonJS script that requires only built-in modules.
const main = NPath.join(work, "main.cjs")
await esbuild.build({
  entryPoints: [NPath.join(root, "scripts/sea-main.cjs")],
  outfile: main,
  bundle: true,
  platform: "node",
  format: "cjs",
  target: "node20",
  logLevel: "warning",
  define: { EZIO_BUNDLE_FILE: JSON.stringify(bundleFile), EZIO_CACHE_FILE: JSON.stringify(cacheFile) }
})
const config = NPath.join(work, "sea-config.json")
const blob = NPath.join(work, "ezio.blob")
NFS.writeFileSync(
  config,
  JSON.stringify(
    {
      main,
      output: blob,
      disableExperimentalSEAWarning: true,
      useSnapshot: true
    },
    null,
    2
  )
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
