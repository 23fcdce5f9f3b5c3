/**
 * Bundles the CLI once per test run, as `pnpm build` does for the installed command, into a
 * directory of its own: the tests then run what users run, and each process starts in a fraction
 * of the time `tsx` takes to compile the sources (the CLI tests start a hundred processes).
 */
import * as NChild from "node:child_process"
import * as NFS from "node:fs"
import * as NOS from "node:os"
import * as NPath from "node:path"
import type { TestProject } from "vitest/node"

declare module "vitest" {
  export interface ProvidedContext {
    /** The bundled `ezio` (a CommonJS file for `node`). */
    readonly ezioBundle: string
  }
}

export default function setup(project: TestProject) {
  const dir = NFS.mkdtempSync(NPath.join(NOS.tmpdir(), "ezio-cli-bundle-"))
  const file = NPath.join(dir, "ezio.cjs")
  const script = NPath.resolve(import.meta.dirname, "../../../scripts/bundle.mjs")
  NChild.execFileSync(process.execPath, [script, file], { stdio: ["ignore", "ignore", "inherit"] })
  project.provide("ezioBundle", file)
  return () => NFS.rmSync(dir, { recursive: true, force: true })
}
