#!/usr/bin/env node
// The `ezio` command. Installed from the packed tarball it runs the one-file bundle that
// `pnpm build` makes, through its code cache (run-bundle.cjs): no TypeScript tool, one file to
// load, little to compile, so it starts at once. In a checkout, where src/ is and build/ may be
// stale or absent, it runs the TypeScript sources through tsx (a dev dependency), as `pnpm ezio`
// does.
import * as NFS from "node:fs"
import { createRequire } from "node:module"

const source = new URL("../src/bin.ts", import.meta.url)
if (NFS.existsSync(source)) {
  const { register } = await import("tsx/esm/api")
  register()
  await import(source.href)
} else {
  createRequire(import.meta.url)("./run-bundle.cjs").runInstalled()
}
