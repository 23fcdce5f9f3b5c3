/**
 * Real BitTorrent clients for interop tests: libtorrent (through `libtorrent_client.py` and Debian's
 * python3-libtorrent), aria2c and transmission-cli.
 *
 * Network rule: everything binds and connects to 127.0.0.1 only; DHT, LSD/LPD, PEX, UPnP and NAT-PMP
 * are off in every client. Every child process is started inside `Effect.acquireRelease`, so closing
 * the scope kills it by its PID (SIGTERM, then SIGKILL after a grace period), and every helper is
 * bounded in time.
 *
 * Use `hasLibtorrent` / `hasAria2` / `hasTransmission` with `it.skipIf(!hasX)`.
 */
import * as ChildProcess from "node:child_process"
import * as NFS from "node:fs"
import * as Net from "node:net"
import * as NPath from "node:path"
import { fileURLToPath } from "node:url"
import { Data, Deferred, Duration, Effect, Schedule, type Scope } from "effect"
import { tempDir } from "./data.js"

export const PYTHON = "/usr/bin/python3"
export const ARIA2C = "/usr/bin/aria2c"
export const TRANSMISSION_CLI = "/usr/bin/transmission-cli"
export const LIBTORRENT_SCRIPT = NPath.join(
  NPath.dirname(fileURLToPath(import.meta.url)),
  "libtorrent_client.py"
)

const probe = (cmd: string, args: ReadonlyArray<string>): boolean => {
  if (!NFS.existsSync(cmd)) return false
  try {
    const r = ChildProcess.spawnSync(cmd, args, { stdio: "ignore", timeout: 10_000 })
    return r.status === 0
  } catch {
    return false
  }
}

/** python3-libtorrent importable by /usr/bin/python3. */
export const hasLibtorrent: boolean = probe(PYTHON, ["-c", "import libtorrent"])
export const hasAria2: boolean = probe(ARIA2C, ["--version"])
export const hasTransmission: boolean = NFS.existsSync(TRANSMISSION_CLI)

export class ClientError extends Data.TaggedError("ClientError")<{
  readonly client: "libtorrent" | "aria2" | "transmission"
  readonly message: string
  readonly stderr?: string
}> {}

// ------------------------------------------------------------------------------------------ utilities

/** A TCP port free on 127.0.0.1 right now (bind :0, read the port, close). */
export const freePort: Effect.Effect<number> = Effect.async<number, Error>((resume) => {
  const server = Net.createServer()
  server.once("error", (e) => resume(Effect.fail(e)))
  server.listen(0, "127.0.0.1", () => {
    const port = (server.address() as Net.AddressInfo).port
    server.close(() => resume(Effect.succeed(port)))
  })
}).pipe(Effect.retry(Schedule.recurs(10)), Effect.orDie)

/** A peer: a port on 127.0.0.1, or "127.0.0.1:PORT". */
export type PeerAddress = number | string

const peerArg = (p: PeerAddress): string => (typeof p === "number" ? `127.0.0.1:${p}` : p)

export interface Child {
  readonly pid: number
  readonly process: ChildProcess.ChildProcess
  /** Everything written to stderr so far (capped at the last 64 KiB). */
  readonly stderr: () => string
  /** Every complete stdout line so far. */
  readonly lines: () => ReadonlyArray<string>
  /** Resolves with the exit code (or the signal name) when the process ends. */
  readonly exited: Effect.Effect<number | string>
}

const kill = (pid: number, signal: NodeJS.Signals) => {
  try {
    process.kill(pid, signal)
  } catch {
    // already gone
  }
}

/**
 * Spawns `cmd` and kills it (by its own PID: SIGTERM, then SIGKILL after `graceMs`) when the scope
 * closes. `onLine` sees every stdout line.
 */
export const spawnScoped = (
  cmd: string,
  args: ReadonlyArray<string>,
  options: { readonly cwd?: string; readonly onLine?: (line: string) => void; readonly graceMs?: number } = {}
): Effect.Effect<Child, never, Scope.Scope> =>
  Effect.gen(function* () {
    const exitedDeferred = yield* Deferred.make<number | string>()
    const lines: Array<string> = []
    let stderr = ""
    let partial = ""
    const child = yield* Effect.acquireRelease(
      Effect.sync(() => {
        const child = ChildProcess.spawn(cmd, [...args], {
          stdio: ["ignore", "pipe", "pipe"],
          ...(options.cwd !== undefined ? { cwd: options.cwd } : {})
        })
        child.stdout.on("data", (d: Buffer) => {
          partial += d.toString("utf8")
          let nl: number
          while ((nl = partial.indexOf("\n")) >= 0) {
            const line = partial.slice(0, nl).replace(/\r$/, "")
            partial = partial.slice(nl + 1)
            lines.push(line)
            options.onLine?.(line)
          }
        })
        child.stderr.on("data", (d: Buffer) => {
          stderr += d.toString("utf8")
          if (stderr.length > 65536) stderr = stderr.slice(-65536)
        })
        const done = (code: number | string) => {
          if (partial.length > 0) {
            lines.push(partial)
            options.onLine?.(partial)
            partial = ""
          }
          Deferred.unsafeDone(exitedDeferred, Effect.succeed(code))
        }
        child.once("error", (e) => done(`spawn error: ${e.message}`))
        child.once("close", (code, signal) => done(code ?? signal ?? "unknown"))
        return child
      }),
      (child) =>
        Effect.gen(function* () {
          const pid = child.pid
          if (pid === undefined || (yield* Deferred.isDone(exitedDeferred))) return
          kill(pid, "SIGTERM")
          const ended = yield* Deferred.await(exitedDeferred).pipe(
            Effect.timeout(Duration.millis(options.graceMs ?? 3000)),
            Effect.option
          )
          if (ended._tag === "None") {
            kill(pid, "SIGKILL")
            yield* Deferred.await(exitedDeferred).pipe(Effect.timeout("5 seconds"), Effect.ignore)
          }
        })
    )
    return {
      pid: child.pid ?? -1,
      process: child,
      stderr: () => stderr,
      lines: () => lines,
      exited: Deferred.await(exitedDeferred)
    } satisfies Child
  })

const parseJson = (line: string): Record<string, unknown> | undefined => {
  if (!line.startsWith("{")) return undefined
  try {
    const v: unknown = JSON.parse(line)
    return typeof v === "object" && v !== null ? (v as Record<string, unknown>) : undefined
  } catch {
    return undefined
  }
}

const lastJsonWith = (lines: ReadonlyArray<string>, key: string): Record<string, unknown> | undefined => {
  for (let i = lines.length - 1; i >= 0; i--) {
    const o = parseJson(lines[i] ?? "")
    if (o !== undefined && key in o) return o
  }
  return undefined
}

/** Sum of the sizes of the regular files under `dir` (recursively), skipping aria2 control files. */
export const directoryBytes = (dir: string): number => {
  let total = 0
  if (!NFS.existsSync(dir)) return 0
  for (const e of NFS.readdirSync(dir, { withFileTypes: true })) {
    const p = NPath.join(dir, e.name)
    if (e.isDirectory()) total += directoryBytes(p)
    else if (e.isFile() && !e.name.endsWith(".aria2")) total += NFS.statSync(p).size
  }
  return total
}

// ------------------------------------------------------------------------------------------ libtorrent

export interface TorrentInfo {
  /** v1 info-hash, 40 lowercase hex characters. */
  readonly info_hash: string
  readonly num_pieces: number
  readonly piece_length: number
  readonly total_size?: number
  readonly name?: string
  readonly files?: ReadonlyArray<{ readonly path: string; readonly size: number }>
  readonly trackers?: ReadonlyArray<string>
}

const runPythonJson = (args: ReadonlyArray<string>, timeoutMs: number) =>
  Effect.scoped(
    Effect.gen(function* () {
      const child = yield* spawnScoped(PYTHON, [LIBTORRENT_SCRIPT, ...args])
      const code = yield* child.exited
      const out = child
        .lines()
        .map(parseJson)
        .find((o) => o !== undefined)
      if (code !== 0 || out === undefined) {
        return yield* new ClientError({
          client: "libtorrent",
          message: `libtorrent_client.py ${args[0] ?? ""} exited with ${code}`,
          stderr: child.stderr()
        })
      }
      return out
    })
  ).pipe(
    Effect.timeoutFail({
      duration: Duration.millis(timeoutMs),
      onTimeout: () => new ClientError({ client: "libtorrent", message: `${args[0] ?? ""} timed out` })
    })
  )

/** Creates a v1-only single-file torrent of `file` with libtorrent's create_torrent. */
export const libtorrentCreate = (options: {
  readonly file: string
  readonly out: string
  readonly pieceLength?: number
  readonly trackers?: ReadonlyArray<string>
  readonly timeoutMs?: number
}): Effect.Effect<TorrentInfo, ClientError> =>
  runPythonJson(
    [
      "create",
      "--file",
      options.file,
      "--out",
      options.out,
      "--piece-length",
      String(options.pieceLength ?? 256 * 1024),
      ...(options.trackers ?? []).flatMap((t) => ["--tracker", t])
    ],
    options.timeoutMs ?? 60_000
  ).pipe(Effect.map((o) => o as unknown as TorrentInfo))

/** libtorrent's view of a .torrent file (v1 info-hash, pieces, files, trackers). */
export const libtorrentInfo = (torrent: string): Effect.Effect<TorrentInfo, ClientError> =>
  runPythonJson(["info", "--torrent", torrent], 30_000).pipe(Effect.map((o) => o as unknown as TorrentInfo))

/** The final line of `libtorrent_client.py download`. */
export interface DownloadSummary {
  readonly done: boolean
  /** From adding the torrent to completion (includes connection setup). */
  readonly seconds: number
  /** From the first payload byte to completion (null if nothing arrived). */
  readonly transfer_seconds: number | null
  readonly bytes: number
  readonly total: number
  /** bytes / seconds, MiB/s. */
  readonly mib_per_s: number
  /** bytes / transfer_seconds, MiB/s (null if nothing arrived). */
  readonly transfer_mib_per_s: number | null
  /** Count of hash_failed_alert. */
  readonly hash_failures: number
  readonly payload_downloaded: number
  readonly error: string | null
  /** ru_maxrss of the python process. */
  readonly peak_rss_kib: number
  /** User + system CPU seconds of the process (all threads) from adding the torrent to the end. */
  readonly cpu_seconds: number
}

/**
 * The settings a libtorrent client starts from (loopback-only settings go on top): `"default"` is
 * libtorrent's defaults, `"high-performance"` its `high_performance_seed()`, `"tuned"` (downloads
 * only) a deep request pipeline with 4 MiB socket buffers, for tests that want speed, not a baseline.
 */
export type LibtorrentPreset = "default" | "high-performance" | "tuned"

/** A once-a-second status line of `download`. */
export interface DownloadProgress {
  readonly t: number
  readonly progress: number
  readonly state: string
  readonly bytes: number
  readonly download_rate: number
  readonly upload_rate: number
  readonly num_peers: number
  readonly hash_failures: number
}

/**
 * Downloads `torrent` (a .torrent path, or a magnet link: the metadata then comes from the peers by
 * BEP 9) into `saveDir` with libtorrent, dialling every peer in `peers` (repeatedly, until
 * connected) — or, with `trackerOnly`, from the torrent's trackers. Resolves with the final summary
 * even when the download did not finish (check `summary.done`); fails only if the script produced no
 * summary. The script stops itself after `timeoutMs`; the process is killed 15 s after that at worst.
 * `preset` defaults to `"tuned"`; `onSpawn` gets the process id (to sample its memory).
 */
export const libtorrentDownload = (options: {
  readonly torrent: string
  readonly saveDir: string
  readonly peers?: ReadonlyArray<PeerAddress>
  readonly trackerOnly?: boolean
  readonly timeoutMs: number
  readonly listenPort?: number
  readonly preset?: LibtorrentPreset
  readonly onProgress?: (p: DownloadProgress) => void
  readonly onSpawn?: (pid: number) => void
}): Effect.Effect<DownloadSummary & { readonly progress: ReadonlyArray<DownloadProgress> }, ClientError> =>
  Effect.scoped(
    Effect.gen(function* () {
      const progress: Array<DownloadProgress> = []
      const args = [
        LIBTORRENT_SCRIPT,
        "download",
        options.torrent.startsWith("magnet:") ? "--magnet" : "--torrent",
        options.torrent,
        "--save",
        options.saveDir,
        "--timeout",
        String(options.timeoutMs / 1000),
        "--listen-port",
        String(options.listenPort ?? 0),
        "--preset",
        options.preset ?? "tuned",
        ...(options.trackerOnly === true ? ["--tracker-only"] : []),
        ...(options.peers ?? []).flatMap((p) => ["--peer", peerArg(p)])
      ]
      const child = yield* spawnScoped(PYTHON, args, {
        onLine: (line) => {
          const o = parseJson(line)
          if (o !== undefined && "progress" in o) {
            progress.push(o as unknown as DownloadProgress)
            options.onProgress?.(o as unknown as DownloadProgress)
          }
        }
      })
      options.onSpawn?.(child.pid)
      const code = yield* child.exited
      const summary = lastJsonWith(child.lines(), "done")
      if (summary === undefined) {
        return yield* new ClientError({
          client: "libtorrent",
          message: `download exited with ${code} without a summary`,
          stderr: child.stderr()
        })
      }
      return { ...(summary as unknown as DownloadSummary), progress }
    })
  ).pipe(
    Effect.timeoutFail({
      duration: Duration.millis(options.timeoutMs + 15_000),
      onTimeout: () => new ClientError({ client: "libtorrent", message: "download hung past its timeout" })
    })
  )

export interface Seeder {
  readonly port: number
  readonly pid: number
  readonly infoHash: string
  /** The latest once-a-second status line ({ t, state, upload_rate, uploaded, num_peers }). */
  readonly status: () => Record<string, unknown> | undefined
  readonly stderr: () => string
  readonly child: Child
}

/**
 * Seeds `torrent` from the data in `saveDir` (seed_mode, or a full hash check with `recheck`) with
 * libtorrent listening on 127.0.0.1. Succeeds once it is listening and seeding; the process is
 * killed when the scope closes. `peers` are dialled (every 0.5 s until connected) once seeding.
 * Settings: libtorrent's defaults, or `high_performance_seed()` with `highPerformance` or
 * `preset: "high-performance"`.
 */
export const libtorrentSeed = (options: {
  readonly torrent: string
  readonly saveDir: string
  readonly highPerformance?: boolean
  readonly preset?: Exclude<LibtorrentPreset, "tuned">
  readonly recheck?: boolean
  readonly listenPort?: number
  readonly peers?: ReadonlyArray<PeerAddress>
  /** Ignore the torrent's announce URLs. */
  readonly noTrackers?: boolean
  /** The seeder exits by itself after this long (default 10 minutes). */
  readonly timeoutMs?: number
  /** Bound on the time to become ready (default 30 s). */
  readonly readyTimeoutMs?: number
}): Effect.Effect<Seeder, ClientError, Scope.Scope> =>
  Effect.gen(function* () {
    const ready = yield* Deferred.make<Record<string, unknown>>()
    let status: Record<string, unknown> | undefined
    const args = [
      LIBTORRENT_SCRIPT,
      "seed",
      "--torrent",
      options.torrent,
      "--save",
      options.saveDir,
      "--listen-port",
      String(options.listenPort ?? 0),
      "--timeout",
      String((options.timeoutMs ?? 600_000) / 1000),
      "--preset",
      options.highPerformance === true ? "high-performance" : (options.preset ?? "default"),
      ...(options.recheck === true ? ["--recheck"] : []),
      ...(options.noTrackers === true ? ["--no-trackers"] : []),
      ...(options.peers ?? []).flatMap((p) => ["--peer", peerArg(p)])
    ]
    const child = yield* spawnScoped(PYTHON, args, {
      onLine: (line) => {
        const o = parseJson(line)
        if (o === undefined) return
        if ("ready" in o) Deferred.unsafeDone(ready, Effect.succeed(o))
        else if ("state" in o) status = o
      }
    })
    const first: Record<string, unknown> = yield* Effect.raceFirst(
      Deferred.await(ready),
      child.exited.pipe(
        Effect.map((code): Record<string, unknown> => ({ ready: false, error: `exited with ${code}` }))
      )
    ).pipe(
      Effect.timeoutFail({
        duration: Duration.millis(options.readyTimeoutMs ?? 30_000),
        onTimeout: () =>
          new ClientError({
            client: "libtorrent",
            message: "seeder not ready in time",
            stderr: child.stderr()
          })
      })
    )
    if (first["ready"] !== true || typeof first["port"] !== "number") {
      return yield* new ClientError({
        client: "libtorrent",
        message: `seeder failed: ${String(first["error"] ?? "unknown")}`,
        stderr: child.stderr()
      })
    }
    return {
      port: first["port"],
      pid: child.pid,
      infoHash: String(first["info_hash"] ?? ""),
      status: () => status,
      stderr: child.stderr,
      child
    } satisfies Seeder
  })

// ------------------------------------------------------------------------------------------------ aria2

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

// ----------------------------------------------------------------------------------------- transmission

/**
 * Downloads `torrent` into `dir` with transmission-cli 3.00, listening on 127.0.0.1:`listenPort`
 * (DHT/LPD/PEX/uTP/port mapping off, in a throw-away config dir). Resolves once it reports "Seeding"
 * (it is then killed) or after `timeoutMs` with `done: false`.
 *
 * transmission-cli ignores 127.x peers it gets from a tracker and cannot be told to dial a peer, so the
 * seeder MUST dial it: pick the port first (`freePort`), run this, and have the seeder connect to
 * 127.0.0.1:`listenPort` (e.g. `libtorrentSeed({ peers: [listenPort] })`, which redials until
 * connected). Expect ~10 s before it starts requesting (its rechoke/interest timer) and a slow ramp:
 * this is an interop check, not a benchmark.
 */
export const transmissionDownload = (options: {
  readonly torrent: string
  readonly dir: string
  readonly listenPort: number
  readonly timeoutMs: number
}): Effect.Effect<ExternalDownloadResult, ClientError> =>
  Effect.scoped(
    Effect.gen(function* () {
      const config = yield* tempDir("ezio-transmission-")
      NFS.writeFileSync(
        NPath.join(config, "settings.json"),
        JSON.stringify({
          "dht-enabled": false,
          "lpd-enabled": false,
          "pex-enabled": false,
          "utp-enabled": false,
          "port-forwarding-enabled": false,
          "bind-address-ipv4": "127.0.0.1",
          "bind-address-ipv6": "::1",
          "peer-port": options.listenPort,
          "peer-port-random-on-start": false,
          "rpc-enabled": false,
          "blocklist-enabled": false,
          "speed-limit-down-enabled": false,
          "speed-limit-up-enabled": false,
          "alt-speed-enabled": false,
          "incomplete-dir-enabled": false,
          "rename-partial-files": false,
          "start-added-torrents": true,
          "watch-dir-enabled": false,
          "message-level": 2,
          encryption: 1,
          "cache-size-mb": 64,
          preallocation: 0,
          "peer-limit-global": 200,
          "peer-limit-per-torrent": 50,
          "ratio-limit-enabled": false,
          "idle-seeding-limit-enabled": false
        })
      )
      const finished = yield* Deferred.make<void>()
      let out = ""
      const started = Date.now()
      const child = yield* spawnScoped(
        TRANSMISSION_CLI,
        [
          "-g",
          config,
          "-w",
          options.dir,
          "-p",
          String(options.listenPort),
          "-M",
          "-D",
          "-U",
          options.torrent
        ],
        {}
      )
      // transmission-cli redraws its status line with \r on stdout
      child.process.stdout?.on("data", (d: Buffer) => {
        out += d.toString("utf8")
        if (out.length > 1 << 20) out = out.slice(-(1 << 19))
        if (/\rSeeding|^Seeding|\nSeeding/.test(out)) Deferred.unsafeDone(finished, Effect.void)
      })
      const outcome = yield* Effect.raceFirst(
        Deferred.await(finished).pipe(Effect.as("done" as const)),
        child.exited.pipe(Effect.as("exited" as const))
      ).pipe(Effect.timeout(Duration.millis(options.timeoutMs)), Effect.option)
      const done = outcome._tag === "Some" && outcome.value === "done"
      const secs = (Date.now() - started) / 1000
      const bytes = directoryBytes(options.dir)
      const lastStatus = out
        .split(/[\r\n]/)
        .map((l) => l.trim())
        .filter((l) => l.length > 0)
        .slice(-1)
        .join("\n")
      return {
        done,
        exitCode: outcome._tag === "Some" && outcome.value === "exited" ? yield* child.exited : "SIGTERM",
        seconds: secs,
        transfer_seconds: null,
        bytes,
        mib_per_s: secs > 0 ? bytes / 1048576 / secs : 0,
        transfer_mib_per_s: null,
        hash_failures: null,
        stdout: lastStatus,
        stderr: child.stderr(),
        log: ""
      } satisfies ExternalDownloadResult
    })
  ).pipe(
    Effect.timeoutFail({
      duration: Duration.millis(options.timeoutMs + 15_000),
      onTimeout: () =>
        new ClientError({ client: "transmission", message: "transmission-cli hung past its timeout" })
    })
  )
