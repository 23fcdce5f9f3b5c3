// The loop `ezio seed` and `ezio download` share: open the data, join the swarm, report until
// interrupted (or, for `download --exit`, until every piece is written, verified and synced). A
// download also ends on a disk error that stopped it (exit 4) or on no progress for
// --stall-timeout (exit 6); see `watch.ts`.
import * as Options from "@effect/cli/Options"
import { DiskIo } from "@ezio/disk-io"
import { Deploy, EmbeddedTracker, Session, Tracker } from "@ezio/peer"
import { BufferPool } from "@ezio/pool"
import { Bitfield } from "@ezio/storage"
import * as Clock from "effect/Clock"
import * as Console from "effect/Console"
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
import * as Option from "effect/Option"
import * as Schedule from "effect/Schedule"
import { check, emit, engine, isTty, json, poolSize, readTorrent, trackers } from "./common.js"
import { metricsText } from "./dashboard/metrics.js"
import * as DeployWatch from "./deployWatch.js"
import { ExitCode, interrupted, Stalled, UsageError } from "./errors.js"
import * as Finish from "./finish.js"
import { formatBytes, formatRate, parseSize } from "./format.js"
import * as Magnet from "./magnet.js"
import * as Target from "./target.js"
import * as Watch from "./watch.js"

/** The options of `seed` and `download`, besides their arguments. */
export const serveOptions = {
  port: Options.integer("port").pipe(
    Options.withAlias("p"),
    Options.withDefault(6881),
    Options.withDescription("Port to listen on for peers (0 picks a free one)")
  ),
  bind: Options.text("bind").pipe(
    Options.withDefault("0.0.0.0"),
    Options.withDescription("Address to listen on")
  ),
  trackers,
  serveTracker: Options.boolean("serve-tracker").pipe(
    Options.withDescription("Run an HTTP tracker in this process and announce to it (no other server needed)")
  ),
  trackerPort: Options.integer("tracker-port").pipe(
    Options.withDefault(6969),
    Options.withDescription("Port of the embedded tracker (--serve-tracker)")
  ),
  peers: Options.text("peer").pipe(
    Options.repeated,
    Options.withDescription("Connect to this peer, host:port (repeatable)")
  ),
  json,
  poolSize,
  uploadSlots: Options.integer("upload-slots").pipe(
    Options.optional,
    Options.withDescription("Peers unchoked at once (default: all, as EZIO does on a LAN)")
  ),
  uploadLimit: Options.text("upload-limit").pipe(
    Options.optional,
    Options.withDescription("Upload limit per second, e.g. 100MiB (default: none)")
  ),
  slowStart: Options.integer("slow-start").pipe(
    Options.optional,
    Options.withDescription("Ramp the upload rate up over this many seconds (EZIO's --slow-start)")
  ),
  encryption: Options.choice("encryption", ["plaintext", "prefer", "require"] as const).pipe(
    Options.withDefault("plaintext" as const),
    Options.withDescription(
      "How connections to peers start: plaintext, or MSE/PE protocol encryption (prefer: plaintext again if the peer lacks it; require: MSE only). Peers that dial us may use either."
    )
  ),
  stallTimeout: Options.integer("stall-timeout").pipe(
    Options.withDefault(180),
    Options.withDescription(
      "download: exit with code 6 after this many seconds without a new verified piece (0: wait for ever)"
    )
  )
}

export interface ServeArgs {
  readonly torrent: string
  readonly data: string
  readonly port: number
  readonly bind: string
  readonly trackers: ReadonlyArray<string>
  readonly serveTracker: boolean
  readonly trackerPort: number
  readonly peers: ReadonlyArray<string>
  readonly json: boolean
  readonly poolSize: string
  readonly uploadSlots: Option.Option<number>
  readonly uploadLimit: Option.Option<string>
  readonly slowStart: Option.Option<number>
  readonly encryption: Session.Encryption
  readonly stallTimeout: number
}

const parsePeer = (text: string) => {
  const at = text.lastIndexOf(":")
  const portNumber = Number(text.slice(at + 1))
  if (at <= 0 || !Number.isInteger(portNumber) || portNumber <= 0 || portNumber > 65535)
    return Effect.fail(new UsageError({ option: "--peer", detail: `"${text}" must be written host:port` }))
  return Effect.succeed({ host: text.slice(0, at).replace(/^\[|\]$/g, ""), port: portNumber })
}

/** What only `seed` (the deploy it watches) or only `download` (when it ends, its name) adds. */
export interface ServeExtra {
  readonly deploy?: DeployWatch.DeployArgs
  readonly finish?: Finish.FinishPolicy
  /** Announced to trackers as the `name` parameter, for the seeder's deploy view. */
  readonly name?: string
}

const withName = (url: string, name: string | undefined) =>
  name === undefined ? url : `${url}${url.includes("?") ? "&" : "?"}name=${encodeURIComponent(name)}`

const loop = (
  args: ServeArgs,
  mode: "seed" | "download",
  trust: boolean,
  exitWhenDone: boolean,
  extra: ServeExtra
) =>
  Effect.gen(function* () {
    const peers = yield* Effect.forEach(args.peers, parsePeer)
    // A magnet link: its metadata from the peers, over the session the swarm then uses.
    const fetched = yield* Magnet.fetch({ ...args, peers })
    const meta = fetched?.meta ?? (yield* readTorrent(args.torrent))
    const uploadLimit = Option.isSome(args.uploadLimit)
      ? yield* parseSize(args.uploadLimit.value, "--upload-limit")
      : 0
    if (!Number.isSafeInteger(args.stallTimeout) || args.stallTimeout < 0)
      return yield* new UsageError({
        option: "--stall-timeout",
        detail: `${args.stallTimeout} must be a whole number of seconds >= 0`
      })
    // A download stopped (Ctrl-C, SIGTERM) before it is complete exits 6, even while checking.
    if (mode === "download") interrupted.code = ExitCode.incomplete
    const target = yield* Target.open({
      metainfo: meta,
      data: args.data,
      mode: mode === "seed" ? "read" : "readwrite"
    })
    let have: Bitfield.Bitfield
    if (!target.existed) {
      // A target this run created holds nothing yet: checking it would only fail to read every piece.
      have = Bitfield.make(meta.pieceCount)
    } else if (trust) {
      have = Bitfield.make(meta.pieceCount)
      for (let i = 0; i < meta.pieceCount; i++) Bitfield.set(have, i)
    } else {
      have = yield* check(target.storage, meta, args.json)
      if (mode === "seed" && !Bitfield.isComplete(have))
        yield* Console.error(
          `warning: ${meta.pieceCount - Bitfield.count(have)} of ${meta.pieceCount} pieces are missing or corrupt; seeding the rest`
        )
    }
    const session =
      fetched?.session ??
      (yield* Session.make({ host: args.bind, port: args.port, encryption: args.encryption }))
    const swarm = yield* session.add({
      metainfo: meta,
      storage: target.storage,
      have,
      ...(Option.isSome(args.uploadSlots) ? { uploadSlots: args.uploadSlots.value } : {}),
      uploadRateLimit: uploadLimit,
      ...(Option.isSome(args.slowStart)
        ? { slowStart: { initialRate: 4 * 1024 * 1024, period: `${args.slowStart.value} seconds` as const } }
        : {})
    })

    const tiers: Array<Array<string>> = []
    let trackerUrl: string | undefined
    const deploy =
      extra.deploy !== undefined && args.serveTracker
        ? yield* Deploy.make({
            torrents: [{ infoHash: meta.infoHash, size: meta.totalLength }],
            exclude: [session.peerId]
          })
        : undefined
    if (args.serveTracker) {
      const embedded = yield* EmbeddedTracker.make({
        host: args.bind,
        port: args.trackerPort,
        ...(deploy === undefined ? {} : { interval: DeployWatch.announceInterval, onAnnounce: deploy.record })
      })
      trackerUrl = embedded.url
      tiers.push([embedded.url])
    }
    if (args.trackers.length > 0) tiers.push([...args.trackers])
    tiers.push(...meta.trackers.map((tier) => [...tier]))
    if (tiers.length > 0) {
      // UDP trackers are reached from the address peers are served on, as HTTP ones are.
      const tracker = yield* Tracker.make(args.bind === "0.0.0.0" ? {} : { udpBindAddress: args.bind })
      yield* swarm.announce(tracker, {
        tiers: tiers.map((tier) => tier.map((url) => withName(url, extra.name))),
        minInterval: "5 seconds",
        retryDelay: "1 second",
        maxRetryDelay: "60 seconds",
        onFailure: (errors) =>
          Effect.logWarning(`every tracker failed: ${errors.map((e) => e.message).join("; ")}`)
      })
    }
    for (const peer of [...peers, ...(fetched?.peers ?? [])]) yield* swarm.connect(peer.host, peer.port)

    const ready = {
      event: "ready",
      mode,
      name: meta.name,
      infoHash: meta.infoHashHex,
      listen: `${args.bind}:${session.port}`,
      have: Bitfield.count(have),
      pieces: meta.pieceCount,
      ...(trackerUrl !== undefined ? { tracker: trackerUrl } : {})
    }
    yield* emit(
      args.json,
      ready,
      `ready: ${mode === "seed" ? "seeding" : "downloading"} ${meta.name} (${meta.infoHashHex}) on ${ready.listen}${trackerUrl !== undefined ? `, tracker ${trackerUrl}` : ""}`
    )

    const pool = yield* BufferPool.BufferPool
    const started = yield* Clock.currentTimeMillis
    let lastLine = 0
    const report = Effect.flatMap(Clock.currentTimeMillis, (now) =>
      Effect.sync(() => {
        const s = swarm.unsafeStatus()
        const p = pool.unsafeStats()
        const poolUse = `${formatBytes(p.inUse * p.blockSize)}/${formatBytes(p.capacityBlocks * p.blockSize)}`
        if (args.json) {
          console.log(
            JSON.stringify({
              event: "status",
              peers: s.peers,
              uploadRate: s.uploadRate,
              uploaded: s.uploaded,
              downloadRate: s.downloadRate,
              downloaded: s.downloaded,
              redundant: s.redundant,
              have: s.have,
              pieces: s.pieces,
              poolInUse: p.inUse * p.blockSize,
              poolPeak: p.peak * p.blockSize,
              hashFailures: s.hashFailures,
              errors: s.errors.length
            })
          )
          return
        }
        const line =
          `peers ${s.peers}  up ${formatRate(s.uploadRate)} (${formatBytes(s.uploaded)})` +
          (mode === "download" || s.downloaded > 0
            ? `  down ${formatRate(s.downloadRate)} (${formatBytes(s.downloaded)})  ${s.have}/${s.pieces} pieces`
            : "") +
          (s.redundant > 0 ? `  redundant ${formatBytes(s.redundant)}` : "") +
          `  pool ${poolUse}`
        if (isTty) process.stdout.write(`\r\x1b[K${line}`)
        else if (now - lastLine >= 10_000) {
          lastLine = now
          console.log(line)
        }
      })
    )
    if (mode === "download" && Bitfield.isComplete(have)) interrupted.code = ExitCode.ok
    yield* Effect.addFinalizer((exit) =>
      Effect.flatMap(Clock.currentTimeMillis, (now) =>
        Effect.sync(() => {
          const s = swarm.unsafeStatus()
          if (isTty && !args.json) process.stdout.write("\n")
          if (mode === "download" && !s.complete && Exit.isInterrupted(exit)) {
            const missing = s.pieces - s.have
            const reason = "stopped before complete; a restart resumes"
            console.error(
              `ezio: ${new Stalled({ path: args.data, missing, pieces: s.pieces, reason }).message}`
            )
          }
          const summary = {
            event: "stopped",
            seconds: (now - started) / 1000,
            uploaded: s.uploaded,
            downloaded: s.downloaded,
            redundant: s.redundant,
            have: s.have,
            pieces: s.pieces,
            poolPeak: pool.unsafeStats().peak * pool.blockSize
          }
          console.log(
            args.json
              ? JSON.stringify(summary)
              : `stopped after ${summary.seconds.toFixed(1)} s: uploaded ${formatBytes(s.uploaded)}, downloaded ${formatBytes(s.downloaded)}, ${s.have}/${s.pieces} pieces, pool peak ${formatBytes(summary.poolPeak)}`
          )
        })
      )
    )
    const watch =
      mode === "download"
        ? Watch.make({
            path: args.data,
            stallTimeoutMs: args.stallTimeout * 1000,
            status: swarm.unsafeStatus
          })
        : Effect.void
    const reporting = Effect.repeat(Effect.zipRight(report, watch), Schedule.spaced("1 second"))
    // `complete` resolves once every piece is verified and synced (the swarm syncs first); from
    // then on a stop is a clean one (exit 0).
    const completed = Effect.tap(swarm.complete, () => Effect.sync(() => (interrupted.code = ExitCode.ok)))
    if (mode === "download") yield* Effect.forkScoped(completed)
    if (deploy !== undefined && extra.deploy !== undefined) {
      yield* Effect.forkScoped(reporting)
      return yield* DeployWatch.watch({
        args: extra.deploy,
        deploy,
        bind: args.bind,
        json: args.json,
        title: meta.name,
        metrics: (snapshot) =>
          metricsText({
            pool: pool.unsafeStats(),
            swarms: [{ name: meta.name, status: swarm.unsafeStatus() }],
            deploy: snapshot
          })
      })
    }
    const finish = extra.finish ?? { _tag: exitWhenDone ? "Exit" : "Seed" }
    if (mode === "download" && finish._tag === "WhenIdle")
      return yield* Effect.raceFirst(reporting, Finish.untilFinished(swarm, finish, args.json))
    if (mode === "download" && finish._tag === "Exit") {
      yield* Effect.raceFirst(reporting, completed)
      const disk = yield* DiskIo.DiskIo
      yield* disk.sync(swarm.disk)
      yield* emit(args.json, { event: "complete" }, `\ncomplete: ${meta.name} verified`)
      return
    }
    if (mode === "download")
      yield* Effect.fork(
        Effect.zipRight(
          completed,
          emit(args.json, { event: "complete" }, `\ncomplete: ${meta.name}; seeding on`)
        )
      )
    return yield* reporting.pipe(Effect.zipRight(Effect.never))
  })

/** Runs the loop with its own engine; the scope closing (Ctrl-C, SIGTERM) stops it cleanly. */
export const serve = (
  args: ServeArgs,
  mode: "seed" | "download",
  trust: boolean,
  exitWhenDone: boolean,
  extra: ServeExtra = {}
) => loop(args, mode, trust, exitWhenDone, extra).pipe(Effect.scoped, Effect.provide(engine(args.poolSize)))
