"use strict"
// The single executable's main script (bundled by scripts/build-sea.mjs): ezio's bundle and its
// code cache are assets of the executable, run as the installed command runs them.
// When it began, for EZIO_STARTUP_TRACE (packages/cli/src/internal/startupTrace.ts).
const cpu = process.cpuUsage()
globalThis[Symbol.for("ezio.startupMarks")] = { main: [performance.now(), cpu.user + cpu.system] }
const sea = require("node:sea")
const { runBundle } = require("../packages/cli/bin/run-bundle.cjs")

runBundle({
  source: sea.getAsset("ezio.cjs", "utf8"),
  filename: process.execPath,
  cachedData: Buffer.from(sea.getAsset("ezio.cache")),
  require
})
