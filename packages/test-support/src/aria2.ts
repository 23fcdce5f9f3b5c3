/** aria2c as a downloader. */
import * as NFS from "node:fs"
import * as NPath from "node:path"
import { Duration, Effect } from "effect"
import { tempDir } from "./data.js"
import { ARIA2C, ClientError, directoryBytes, freePort, spawnScoped } from "./process.js"

export interface ExternalDownloadResult {
  /** The download completed (aria2: exit code 0; transmission: it reported "Seeding"). */
  readonly done: boolean
  /** Process exit code or signal name (transmission-cli is killed by us once done: "SIGTERM"). */
  readonly exitCode: number | string
  /** Wall-clock seconds from spawn to completion (includes the client's start-up and its timers). */
  readonly seconds: number
  /** Seconds from the first peer handshake to the last piece (aria2 with `detailedLog` only). */
  readonly transfer_seconds: number | null
  /** Bytes on disk in the download directory afterwards (aria2 control files excluded). */
  readonly bytes: number
  /** bytes / seconds. */
  readonly mib_per_s: number
  /** bytes / transfer_seconds (null when unknown). */
  readonly transfer_mib_per_s: number | null
  /** Pieces that failed their hash check (aria2 "we got wrong piece", with `detailedLog`; else null). */
  readonly hash_failures: number | null
  readonly stdout: string
  readonly stderr: string
  /** aria2: NOTICE/WARN/ERROR lines of its log (at most the last 100). */
  readonly log: string
}

/** "2026-11-24 11:22:08.152307 [INFO] ..." → epoch seconds (local time; only differences matter). */
const aria2Time = (line: string): number | undefined => {
  const m = /^(\d{4}-\d\d-\d\d) (\d\d):(\d\d):(\d\d)\.(\d+)/.exec(line)
  if (m === null) return undefined
  const day = Date.parse(`${m[1]}T00:00:00Z`) / 1000
  return day + Number(m[2]) * 3600 + Number(m[3]) * 60 + Number(m[4]) + Number(`0.${m[5]}`)
}

/**
 * Downloads `torrent` into `dir` with aria2c and exits once complete (`--seed-time=0`). aria2 listens
 * on 127.0.0.1 only (`--interface=127.0.0.1`, verified with `ss`), DHT/DHT6/LPD/PEX off.
 *
 * aria2 cannot be told to dial a peer from the command line: it only learns peers from the torrent's
 * trackers, so the torrent MUST announce to a tracker on 127.0.0.1 that lists the seeder (aria2 does
 * dial 127.0.0.1 peers it gets from a tracker). Give the tracker time to be up first: aria2 gives up on
 * an unreachable announce URL and does not retry soon. aria2 hash-checks every piece it downloads (a
 * bad piece is re-requested, it does not fail the run); `done` means exit code 0.
 *
 * Timing: aria2 dials peers on a 1 s tick after the announce and re-announces (event=completed) before
 * exiting, so `seconds` carries ~2-3 s of overhead; with `detailedLog` (default true: an INFO-level
 * log, ~20 MB per GiB, in a temp dir removed afterwards) `transfer_seconds` is measured from the first
 * peer handshake to "The download was complete." and `hash_failures` is counted.
 */
export const aria2Download = (options: {
  readonly torrent: string
  readonly dir: string
  readonly timeoutMs: number
  readonly listenPort?: number
  readonly detailedLog?: boolean
  readonly extraArgs?: ReadonlyArray<string>
}): Effect.Effect<ExternalDownloadResult, ClientError> =>
  Effect.scoped(
    Effect.gen(function* () {
      const port = options.listenPort ?? (yield* freePort)
      const logDir = yield* tempDir("ezio-aria2-")
      const logFile = NPath.join(logDir, "aria2.log")
      const detailed = options.detailedLog ?? true
      const seconds = Math.max(1, Math.ceil(options.timeoutMs / 1000))
      const args = [
        "--no-conf=true",
        `--dir=${options.dir}`,
        "--interface=127.0.0.1",
        "--disable-ipv6=true",
        `--listen-port=${port}`,
        "--enable-dht=false",
        "--enable-dht6=false",
        "--bt-enable-lpd=false",
        "--enable-peer-exchange=false",
        "--seed-time=0",
        `--bt-stop-timeout=${seconds}`,
        `--stop=${seconds}`,
        "--file-allocation=none",
        "--check-integrity=false",
        "--bt-hash-check-seed=false",
        "--bt-save-metadata=false",
        "--bt-request-peer-speed-limit=1024M",
        "--max-overall-download-limit=0",
        "--allow-overwrite=true",
        "--auto-save-interval=0",
        "--summary-interval=0",
        "--console-log-level=warn",
        "--show-console-readout=false",
        `--log=${logFile}`,
        `--log-level=${detailed ? "info" : "notice"}`,
        ...(options.extraArgs ?? []),
        options.torrent
      ]
      const started = Date.now()
      const child = yield* spawnScoped(ARIA2C, args)
      const exitCode = yield* child.exited
      const secs = (Date.now() - started) / 1000
      const bytes = directoryBytes(options.dir)
      let transfer: number | null = null
      let hashFailures: number | null = null
      const notices: Array<string> = []
      if (NFS.existsSync(logFile)) {
        let firstHandshake: number | undefined
        let complete: number | undefined
        let wrong = 0
        for (const line of NFS.readFileSync(logFile, "utf8").split("\n")) {
          if (/\[(NOTICE|WARN|ERROR)\]/.test(line)) notices.push(line)
          if (!detailed) continue
          if (firstHandshake === undefined && line.includes("handshake peerId="))
            firstHandshake = aria2Time(line)
          else if (
            complete === undefined &&
            firstHandshake !== undefined &&
            line.includes("The download was complete.")
          )
            complete = aria2Time(line)
          if (line.includes("we got wrong piece")) wrong++
        }
        if (detailed) hashFailures = wrong
        if (firstHandshake !== undefined && complete !== undefined) transfer = complete - firstHandshake
      }
      return {
        done: exitCode === 0,
        exitCode,
        seconds: secs,
        transfer_seconds: transfer,
        bytes,
        mib_per_s: secs > 0 ? bytes / 1048576 / secs : 0,
        transfer_mib_per_s: transfer !== null && transfer > 0 ? bytes / 1048576 / transfer : null,
        hash_failures: hashFailures,
        stdout: child.lines().join("\n"),
        stderr: child.stderr(),
        log: notices.slice(-100).join("\n")
      } satisfies ExternalDownloadResult
    })
  ).pipe(
    Effect.timeoutFail({
      duration: Duration.millis(options.timeoutMs + 10_000),
      onTimeout: () => new ClientError({ client: "aria2", message: "aria2c hung past its timeout" })
    })
  )
