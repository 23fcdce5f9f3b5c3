"use strict"
// Runs ezio's one-file bundle (build/bundle/ezio.cjs, made by `pnpm build`) with V8's code cache
// for it (build/bundle/ezio.cache), which the build records after a download (scripts/bundle.mjs),
// so the functions start-up runs need no compiling. V8 rejects a cache made by another Node
// version (or other V8 flags) and then compiles as usual. The single executable's snapshot is
// made by the same function, once, at build time (scripts/sea-main.cjs).
const NFS = require("node:fs")
const NPath = require("node:path")
const NVm = require("node:vm")

/**
 * Compiles `source` as a CommonJS module with `cachedData` and runs it. With `cacheOut`, writes
 * a fresh cache there when the process exits (the build sets it, with V8's default heap policy
 * so that the cache's flags match a run's at compile time).
 */
exports.runBundle = ({ source, filename, cachedData, require, cacheOut }) => {
  // For EZIO_STARTUP_TRACE (src/internal/startupTrace.ts): when the bundle was read and compiled.
  const marks = (globalThis[Symbol.for("ezio.startupMarks")] ??= {})
  const mark = (name) => {
    const cpu = process.cpuUsage()
    marks[name] = [performance.now(), cpu.user + cpu.system]
  }
  mark("read")
  const wrapper = `(function (exports, require, module, __filename, __dirname) {${source}\n})`
  const script = new NVm.Script(wrapper, { filename, ...(cachedData === undefined ? {} : { cachedData }) })
  if (script.cachedDataRejected === true && process.env.EZIO_LOG === "debug") {
    console.error("ezio: the code cache is not for this Node; compiling")
  }
  mark("compiled")
  const module = { exports: {} }
  script
    .runInThisContext()
    .call(module.exports, module.exports, require, module, filename, NPath.dirname(filename))
  if (cacheOut !== undefined)
    process.once("exit", () => NFS.writeFileSync(cacheOut, script.createCachedData()))
  return script.cachedDataRejected === true
}

/** The installed command: the bundle beside this file's package, with its cache when there is one. */
exports.runInstalled = () => {
  const filename = NPath.join(__dirname, "../build/bundle/ezio.cjs")
  const cache = NPath.join(__dirname, "../build/bundle/ezio.cache")
  const cacheOut = process.env.EZIO_WRITE_CODE_CACHE === "1" ? cache : undefined
  exports.runBundle({
    source: NFS.readFileSync(filename, "utf8"),
    filename,
    cachedData: cacheOut === undefined && NFS.existsSync(cache) ? NFS.readFileSync(cache) : undefined,
    require: require("node:module").createRequire(filename),
    cacheOut
  })
}

if (require.main === module) exports.runInstalled()
