// The loop `ezio seed` and `ezio download` share: open the data of every torrent/target pair, join
// one swarm per torrent on one session (one peer id, one port, one pool), report until interrupted
// (or, for `download --exit`, until every piece of every torrent is written, verified and synced).
// A download also ends on a disk error that stopped any of them (exit 4) or on one making no
// progress for --stall-timeout (exit 6); see `watch.ts`. What it prints is in `serveStatus.ts`,
// how the pairs are opened in `torrents.ts`.
import * as Options from "@effect/cli/Options"
import { DiskIo } from "@ezio/disk-io"
import { Deploy, EmbeddedTracker, Session, Tracker } from "@ezio/peer"
import { BufferPool } from "@ezio/pool"
import { Bitfield } from "@ezio/storage"
import type { Metainfo } from "@ezio/torrent"
import * as Clock from "effect/Clock"
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
import * as Option from "effect/Option"
import * as Schedule from "effect/Schedule"
import { emit, engine, isTty, json, poolSize, trackers } from "./common.js"
import { metricsText } from "./dashboard/metrics.js"
import * as DeployWatch from "./deployWatch.js"
import { ExitCode, interrupted, Stalled, UsageError } from "./errors.js"
import * as Finish from "./finish.js"
import { parseSize } from "./format.js"
import * as Status from "./serveStatus.js"
import * as StartupTrace from "./startupTrace.js"
import * as Torrents from "./torrents.js"
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
  /** The torrent/target pairs, at least one: one swarm each, all on one session and pool. */
  readonly pairs: ReadonlyArray<Torrents.Pair>
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
    StartupTrace.mark("engine")
    const peers = yield* Effect.forEach(args.peers, parsePeer)
    // Magnet links: their metadata from the peers, over the session the swarms then use.
    const { resolved, session: fetching } = yield* Torrents.resolve(args.pairs, { ...args, peers })
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
    const opened = yield* Torrents.open(resolved, { mode, trust, json: args.json })
    StartupTrace.mark("opened")
    const metas = opened.map((o) => o.meta)
    const title = Status.names(metas)
    const session =
      fetching ?? (yield* Session.make({ host: args.bind, port: args.port, encryption: args.encryption }))
    const parts: ReadonlyArray<Status.Part> = yield* Effect.forEach(opened, (o) =>
      Effect.map(
        session.add({
          metainfo: o.meta,
          storage: o.storage,
          have: o.have,
          ...(Option.isSome(args.uploadSlots) ? { uploadSlots: args.uploadSlots.value } : {}),
          uploadRateLimit: uploadLimit,
          ...(Option.isSome(args.slowStart)
            ? {
                slowStart: {
                  initialRate: 4 * 1024 * 1024,
                  period: `${args.slowStart.value} seconds` as const
                }
              }
            : {})
        }),
        (swarm) => ({ data: o.data, swarm })
      )
    )
    const swarms = parts.map((p) => p.swarm)
    StartupTrace.mark("session")

    const ours: Array<string> = []
    let trackerUrl: string | undefined
    // One deploy over every torrent: a target (a peer id) is done once it has all of them.
    const deploy =
      extra.deploy !== undefined && args.serveTracker
        ? yield* Deploy.make({
            torrents: metas.map((meta) => ({ infoHash: meta.infoHash, size: meta.totalLength })),
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
      StartupTrace.mark("tracker-up")
      ours.push(embedded.url)
    }
    const tiersOf = (meta: Metainfo.Metainfo) => [
      ...(ours.length > 0 ? [ours] : []),
      ...(args.trackers.length > 0 ? [[...args.trackers]] : []),
      ...meta.trackers.map((tier) => [...tier])
    ]
    if (metas.some((meta) => tiersOf(meta).length > 0)) {
      // UDP trackers are reached from the address peers are served on, as HTTP ones are.
      const tracker = yield* Tracker.make(args.bind === "0.0.0.0" ? {} : { udpBindAddress: args.bind })
      for (const swarm of swarms) {
        const tiers = tiersOf(swarm.metainfo)
        if (tiers.length === 0) continue
        yield* swarm.announce(tracker, {
          tiers: tiers.map((tier) => tier.map((url) => withName(url, extra.name))),
          minInterval: "5 seconds",
          retryDelay: "1 second",
          maxRetryDelay: "60 seconds",
          // Targets start with their seeder: its tracker may be a moment from listening.
          startRetry: { delay: "100 millis", rounds: 50 },
          // The targets start together: a first announce whose SYN was lost is sent again.
          startHedge: "300 millis",
          onResponse: () => StartupTrace.markEffect("announced"),
          onFailure: (errors) =>
            Effect.zipRight(
              StartupTrace.markEffect("announce-failed"),
              Effect.logWarning(
                `every tracker failed${swarms.length > 1 ? ` for ${swarm.metainfo.name}` : ""}: ${errors.map((e) => e.message).join("; ")}`
              )
            )
        })
      }
    }
    for (const [i, swarm] of swarms.entries())
      for (const peer of [...peers, ...opened[i]!.peers]) yield* swarm.connect(peer.host, peer.port)

    const ready = Status.ready({ mode, parts, listen: `${args.bind}:${session.port}`, tracker: trackerUrl })
    yield* emit(args.json, ready.value, ready.text)
    StartupTrace.mark("ready")
    if (mode === "download" && StartupTrace.enabled)
      yield* Effect.forkScoped(StartupTrace.watchFirstBytes(() => Status.total(Status.statuses(parts))))

    const pool = yield* BufferPool.BufferPool
    const started = yield* Clock.currentTimeMillis
    let lastLine = 0
    const report = Effect.flatMap(Clock.currentTimeMillis, (now) =>
      Effect.sync(() => {
        const each = Status.statuses(parts)
        const p = pool.unsafeStats()
        if (args.json) {
          console.log(JSON.stringify(Status.statusJson(parts, each, p)))
          return
        }
        const line = Status.statusText(mode, Status.total(each), p)
        if (isTty()) process.stdout.write(`\r\x1b[K${line}`)
        else if (now - lastLine >= 10_000) {
          lastLine = now
          console.log(line)
        }
      })
    )
    if (mode === "download" && opened.every((o) => Bitfield.isComplete(o.have)))
      interrupted.code = ExitCode.ok
    yield* Effect.addFinalizer((exit) =>
      Effect.flatMap(Clock.currentTimeMillis, (now) =>
        Effect.sync(() => {
          const each = Status.statuses(parts)
          if (isTty() && !args.json) process.stdout.write("\n")
          if (mode === "download" && Exit.isInterrupted(exit))
            for (const [i, s] of each.entries()) {
              if (s.complete) continue
              const missing = s.pieces - s.have
              const reason = "stopped before complete; a restart resumes"
              console.error(
                `ezio: ${new Stalled({ path: parts[i]!.data, missing, pieces: s.pieces, reason }).message}`
              )
            }
          const summary = Status.stopped(parts, each, pool.unsafeStats(), (now - started) / 1000)
          console.log(args.json ? JSON.stringify(summary.value) : summary.text)
        })
      )
    )
    // One stall watch per torrent: each names its own target, and a complete one never fails.
    const watches = parts.map((p) =>
      Watch.make({ path: p.data, stallTimeoutMs: args.stallTimeout * 1000, status: p.swarm.unsafeStatus })
    )
    const watch = mode === "download" ? Effect.all(watches, { discard: true }) : Effect.void
    const reporting = Effect.repeat(Effect.zipRight(report, watch), Schedule.spaced("1 second"))
    // `complete` resolves once every piece of every torrent is verified and synced (each swarm
    // syncs first); from then on a stop is a clean one (exit 0).
    const completed = Effect.all(
      swarms.map((swarm) => swarm.complete),
      { concurrency: "unbounded", discard: true }
    ).pipe(Effect.tap(() => Effect.sync(() => (interrupted.code = ExitCode.ok))))
    if (mode === "download") yield* Effect.forkScoped(completed)
    if (deploy !== undefined && extra.deploy !== undefined) {
      yield* Effect.forkScoped(reporting)
      return yield* DeployWatch.watch({
        args: extra.deploy,
        deploy,
        bind: args.bind,
        json: args.json,
        title,
        metrics: (snapshot) =>
          metricsText({
            pool: pool.unsafeStats(),
            swarms: swarms.map((swarm) => ({ name: swarm.metainfo.name, status: swarm.unsafeStatus() })),
            deploy: snapshot
          })
      })
    }
    const finish = extra.finish ?? { _tag: exitWhenDone ? "Exit" : "Seed" }
    if (mode === "download" && finish._tag === "WhenIdle")
      return yield* Effect.raceFirst(reporting, Finish.untilFinished(swarms, finish, args.json))
    if (mode === "download" && finish._tag === "Exit") {
      yield* Effect.raceFirst(reporting, completed)
      const disk = yield* DiskIo.DiskIo
      yield* Effect.forEach(swarms, (swarm) => disk.sync(swarm.disk), { discard: true })
      yield* emit(args.json, { event: "complete" }, `\ncomplete: ${title} verified`)
      return
    }
    if (mode === "download")
      yield* Effect.fork(
        Effect.zipRight(completed, emit(args.json, { event: "complete" }, `\ncomplete: ${title}; seeding on`))
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
) =>
  Effect.zipRight(
    StartupTrace.markEffect("command"),
    loop(args, mode, trust, exitWhenDone, extra).pipe(
      Effect.scoped,
      // A download hashes what it receives on the main thread, where the bytes are in the cache.
      Effect.provide(engine(args.poolSize, mode === "download" ? "caller" : "workers"))
    )
  )
