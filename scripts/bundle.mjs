// Bundles the `ezio` command into one CommonJS file, packages/cli/build/bundle/ezio.cjs: what the
// installed npm bin runs (one file to parse instead of a few thousand modules, so it starts at
// once) and what the single executable runs (scripts/build-sea.mjs). Then records V8's code cache
// for it, ezio.cache beside it, from one run of `ezio --version` (see bin/run-bundle.cjs).
//
// The hashing worker is bundled too and its code is put on globalThis (see Hasher's
// `embeddedWorker`), so the bundle needs no file beside it. Bundled from the TypeScript sources
// (esbuild strips the types), so it does not wait for `tsc -b`.
import * as NChild from "node:child_process"
import * as NFS from "node:fs"
import * as NPath from "node:path"
import * as esbuild from "esbuild"

const root = NPath.resolve(import.meta.dirname, "..")
export const bundleFile = NPath.join(root, "packages/cli/build/bundle/ezio.cjs")
export const cacheFile = NPath.join(root, "packages/cli/build/bundle/ezio.cache")

/** The hashing worker's source, in whichever package holds it. */
const findWorker = () => {
  const found = NFS.readdirSync(NPath.join(root, "packages"))
    .map((name) => NPath.join(root, "packages", name, "src/internal/hashWorker.mjs"))
    .filter((path) => NFS.existsSync(path))
  if (found.length !== 1)
    throw new Error(`expected one packages/*/src/internal/hashWorker.mjs, found ${found.length}`)
  return found[0]
}

const common = { bundle: true, platform: "node", format: "cjs", target: "node20", logLevel: "warning" }

/**
 * Writes the bundle to `outfile` and, with `codeCache`, its code cache beside the default bundle
 * (the CLI tests bundle into a directory of their own, without a cache).
 */
export const bundle = async ({ outfile = bundleFile, codeCache = true } = {}) => {
  const worker = await esbuild.build({ ...common, entryPoints: [findWorker()], write: false, minify: true })
  const workerSource = worker.outputFiles[0].text
  await esbuild.build({
    ...common,
    entryPoints: [NPath.join(root, "packages/cli/src/bin.ts")],
    outfile,
    // Syntax and whitespace only: identifiers (and so class and function names) are kept.
    minifySyntax: true,
    minifyWhitespace: true,
    sourcemap: "linked",
    // A CommonJS file has no import.meta; the worker file URL built from it is never used.
    define: { "import.meta.url": "__ezioModuleUrl" },
    banner: {
      js: [
        `var __ezioModuleUrl = require("node:url").pathToFileURL(__filename).href;`,
        `globalThis[Symbol.for("ezio.hashWorkerSource")] = ${JSON.stringify(workerSource)};`
      ].join("\n")
    }
  })
  if (!codeCache) return outfile
  NFS.rmSync(cacheFile, { force: true })
  NChild.execFileSync(process.execPath, [NPath.join(root, "packages/cli/bin/run-bundle.cjs"), "--version"], {
    env: { ...process.env, EZIO_WRITE_CODE_CACHE: "1", EZIO_V8_HEAP_GROWING_PERCENT: "0" },
    stdio: "ignore"
  })
  if (!NFS.existsSync(cacheFile)) throw new Error(`no code cache written to ${cacheFile}`)
  return bundleFile
}

if (import.meta.filename === NPath.resolve(process.argv[1] ?? "")) {
  // `node scripts/bundle.mjs [outfile]`: with an outfile, no code cache.
  const outfile = process.argv[2]
  const file = await bundle(
    outfile === undefined ? {} : { outfile: NPath.resolve(outfile), codeCache: false }
  )
  console.log(`${NPath.relative(root, file)}: ${(NFS.statSync(file).size / 1024 / 1024).toFixed(1)} MiB`)
}
