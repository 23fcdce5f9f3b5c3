// Part of `pnpm build`: tsc compiles only .ts, so the plain-JS modules that are loaded by URL at
// run time (the hashing worker) are copied next to the compiled code, at the same relative path
// under build/esm as under src, in whichever package holds them.
import * as NFS from "node:fs"
import * as NPath from "node:path"

const packages = NPath.resolve(import.meta.dirname, "../packages")

const walk = (dir) =>
  NFS.readdirSync(dir, { withFileTypes: true }).flatMap((entry) => {
    const path = NPath.join(dir, entry.name)
    return entry.isDirectory() ? walk(path) : entry.name.endsWith(".mjs") ? [path] : []
  })

for (const name of NFS.readdirSync(packages)) {
  const src = NPath.join(packages, name, "src")
  const out = NPath.join(packages, name, "build", "esm")
  if (!NFS.existsSync(src) || !NFS.existsSync(out)) continue
  for (const file of walk(src)) {
    const target = NPath.join(out, NPath.relative(src, file))
    NFS.mkdirSync(NPath.dirname(target), { recursive: true })
    NFS.copyFileSync(file, target)
  }
}
