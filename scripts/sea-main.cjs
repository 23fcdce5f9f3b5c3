"use strict"
// The single executable's main script (bundled by scripts/build-sea.mjs). It runs once, on the
// build machine, inside Node's startup snapshot builder (sea-config `useSnapshot`): it compiles
// ezio's bundle with the code cache of a download (so the functions a start runs are compiled
// already) and evaluates it, and the bundle, seeing a snapshot being built, leaves its run to
// the deserialized executable (packages/cli/src/bin.ts). The executable then starts from that
// heap: no bundle to read, compile or evaluate.
const NFS = require("node:fs")
const NV8 = require("node:v8")
const { runBundle } = require("../packages/cli/bin/run-bundle.cjs")

// Replaced by esbuild (scripts/build-sea.mjs) with the paths of the bundle and its code cache.
const bundleFile = EZIO_BUNDLE_FILE
const cacheFile = EZIO_CACHE_FILE

// When the executable began, for EZIO_STARTUP_TRACE (packages/cli/src/internal/startupTrace.ts);
// the marks the build made are dropped.
NV8.startupSnapshot.addDeserializeCallback(() => {
  const cpu = process.cpuUsage()
  globalThis[Symbol.for("ezio.startupMarks")] = { main: [performance.now(), cpu.user + cpu.system] }
})

const rejected = runBundle({
  source: NFS.readFileSync(bundleFile, "utf8"),
  filename: bundleFile,
  cachedData: NFS.readFileSync(cacheFile),
  require
})
if (rejected) throw new Error(`the snapshot builder rejected the code cache ${cacheFile}`)
