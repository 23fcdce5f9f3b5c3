// Bundles the `ezio` command into one CommonJS file, packages/cli/build/bundle/ezio.cjs: what the
// installed npm bin runs (one file to parse instead of a few thousand modules, so it starts at
// once) and what the single executable runs (scripts/build-sea.mjs). Then records V8's code cache
// for it, ezio.cache beside it (see bin/run-bundle.cjs), from a run of what targets start with:
// `ezio download` of a small torrent from an `ezio seed --serve-tracker` over 127.0.0.1, so that
// the functions a download runs up to its first blocks (the CLI, the engine, the session, the
// announce, the wire) are compiled already; what was not run is compiled when first called.
//
// The hashing worker is bundled too and its code is put on globalThis (see Hasher's
// `embeddedWorker`), so the bundle needs no file beside it. Bundled from the TypeScript sources
// (esbuild strips the types), so it does not wait for `tsc -b`.
import * as NChild from "node:child_process"
import * as NCrypto from "node:crypto"
import * as NFS from "node:fs"
import * as NOS from "node:os"
import * as NPath from "node:path"
import * as NReadline from "node:readline"
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

/**
 * Node modules that a startup snapshot cannot hold (Node 20 serializes no HTTP parser, and a
 * worker started after deserialization fails if worker_threads was loaded before): each is
 * bundled as a stand-in whose exports load the real module when first read, so evaluating the
 * bundle does not load them and `scripts/build-sea.mjs` can snapshot it.
 */
const lazyBuiltins = (names) => ({
  name: "lazy-builtins",
  setup(build) {
    build.onResolve({ filter: new RegExp(`^(node:)?(${names.join("|")})$`) }, (args) =>
      // The stand-in's own require is of the real module.
      args.namespace === "lazy-builtin"
        ? { path: args.path, external: true }
        : { path: args.path.replace(/^node:/, ""), namespace: "lazy-builtin" }
    )
    build.onLoad({ filter: /.*/, namespace: "lazy-builtin" }, async (args) => {
      const keys = Object.keys(await import(`node:${args.path}`)).filter((k) => k !== "default")
      return {
        loader: "js",
        contents: [
          `let m; const load = () => (m ??= require("node:${args.path}"));`,
          `for (const k of ${JSON.stringify(keys)}) Object.defineProperty(exports, k, { get: () => load()[k], enumerable: true });`
        ].join("\n")
      }
    })
  }
})

const common = { bundle: true, platform: "node", format: "cjs", target: "node20", logLevel: "warning" }

const runBundle = NPath.join(root, "packages/cli/bin/run-bundle.cjs")
/** V8's default heap policy: the cache's flags must match a run's when the bundle is compiled. */
const cacheEnv = {
  ...process.env,
  EZIO_WRITE_CODE_CACHE: "1",
  EZIO_V8_HEAP_GROWING_PERCENT: "0",
  EZIO_V8_SEMI_SPACE_MIB: "0",
  EZIO_V8_OLD_SPACE_SLACK_MIB: "0"
}

/** Runs `ezio args...` from the bundle to its end (`env`: the download that writes the cache). */
const runEzio = (args, env = process.env) =>
  new Promise((resolve, reject) => {
    const child = NChild.spawn(process.execPath, [runBundle, ...args], {
      env,
      stdio: ["ignore", "ignore", "pipe"]
    })
    let stderr = ""
    child.stderr.on("data", (d) => (stderr += d))
    const timer = setTimeout(() => child.kill("SIGKILL"), 60_000)
    child.once("exit", (code) => {
      clearTimeout(timer)
      if (code === 0) resolve()
      else reject(new Error(`ezio ${args[0]} (code cache run) exited with ${code}: ${stderr.slice(-2000)}`))
    })
  })

/** Writes the code cache from a download of 4 MiB from a seeder with its own tracker, both on 127.0.0.1. */
const writeCodeCache = async () => {
  const dir = NFS.mkdtempSync(NPath.join(NOS.tmpdir(), "ezio-code-cache-"))
  let seeder
  try {
    const data = NPath.join(dir, "data.bin")
    const torrent = NPath.join(dir, "data.torrent")
    NFS.writeFileSync(data, NCrypto.randomBytes(4 * 1024 * 1024))
    await runEzio(["create", data, "-o", torrent, "--piece-length", "256KiB"])
    const child = NChild.spawn(
      process.execPath,
      [
        runBundle,
        "seed",
        torrent,
        data,
        "--trust",
        "--serve-tracker",
        "--tracker-port",
        "0",
        "--bind",
        "127.0.0.1",
        "--port",
        "0",
        "--json"
      ],
      { stdio: ["ignore", "pipe", "ignore"] }
    )
    seeder = child
    const tracker = await new Promise((resolve, reject) => {
      const timer = setTimeout(
        () => reject(new Error("the code cache run's seeder was not ready within 60 s")),
        60_000
      )
      child.once("exit", (code) => reject(new Error(`the code cache run's seeder exited with ${code}`)))
      NReadline.createInterface({ input: child.stdout }).on("line", (line) => {
        if (!line.includes('"event":"ready"')) return
        clearTimeout(timer)
        resolve(JSON.parse(line).tracker)
      })
    })
    const out = NPath.join(dir, "out.bin")
    await runEzio(
      ["download", torrent, out, "--tracker", tracker, "--bind", "127.0.0.1", "--port", "0", "--exit"],
      cacheEnv
    )
  } finally {
    seeder?.kill("SIGKILL")
    NFS.rmSync(dir, { recursive: true, force: true })
  }
}

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
    plugins: [lazyBuiltins(["http", "https", "worker_threads"])],
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
  await writeCodeCache()
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
