/** python3-libtorrent through `libtorrent_client.py`: create, info, download, seed. */
import { Deferred, Duration, Effect, type Scope } from "effect"
import {
  ClientError,
  type Child,
  LIBTORRENT_SCRIPT,
  lastJsonWith,
  parseJson,
  peerArg,
  type PeerAddress,
  PYTHON,
  spawnScoped
} from "./process.js"
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
  /** The system part of `cpu_seconds` (the kernel: socket and file copies, page faults). */
  readonly cpu_system_seconds?: number
  /** Every peer seen past its handshake, and how its connection is encrypted (peer_info's flags). */
  readonly peers: ReadonlyArray<{
    readonly address: string
    readonly encryption: "none" | "plaintext_encrypted" | "rc4_encrypted"
  }>
}

/**
 * settings_pack entries set on top of a preset and the loopback settings, by name, e.g.
 * `{ out_enc_policy: 0, allowed_enc_level: 1 }` (pe_forced, RC4 only).
 */
export type LibtorrentSettings = Readonly<Record<string, number | boolean | string>>

const settingArgs = (settings: LibtorrentSettings | undefined): Array<string> =>
  Object.entries(settings ?? {}).flatMap(([name, value]) => ["--setting", `${name}=${String(value)}`])

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
  readonly settings?: LibtorrentSettings
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
        ...settingArgs(options.settings),
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
  readonly settings?: LibtorrentSettings
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
      ...settingArgs(options.settings),
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
