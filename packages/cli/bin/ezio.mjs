#!/usr/bin/env node
// The `ezio` command. Installed from the packed tarball it runs the one-file bundle that
// `pnpm build` makes (no TypeScript tool, one file to load, so it starts at once). In a checkout,
// where src/ is and build/ may be stale or absent, it runs the TypeScript sources through tsx
// (a dev dependency), as `pnpm ezio` does.
import * as NFS from "node:fs"
import { createRequire } from "node:module"

const source = new URL("../src/bin.ts", import.meta.url)
if (NFS.existsSync(source)) {
  const { register } = await import("tsx/esm/api")
  register()
  await import(source.href)
} else {
  // require, not import: the ESM loader would first scan the whole bundle for its exports.
  createRequire(import.meta.url)("../build/bundle/ezio.cjs")
}
