/**
 * The `ezio` command: create, info, seed, download, verify, and a self-contained demo.
 *
 * @since 0.1.0
 */
import * as NFS from "node:fs"
import * as Args from "@effect/cli/Args"
import * as Command from "@effect/cli/Command"
import * as Options from "@effect/cli/Options"
import * as ValidationError from "@effect/cli/ValidationError"
import { DiskIo } from "@ezio/disk-io"
import { EmbeddedTracker, Session, Tracker } from "@ezio/peer"
import { BufferPool } from "@ezio/pool"
import { Bitfield, Check } from "@ezio/storage"
import { Create, Hasher, Metainfo, RawImage } from "@ezio/torrent"
import * as Cause from "effect/Cause"
import * as Console from "effect/Console"
import * as Effect from "effect/Effect"
import * as Either from "effect/Either"
import * as Exit from "effect/Exit"
import * as Layer from "effect/Layer"
import * as Option from "effect/Option"
import * as Schedule from "effect/Schedule"
import { runDemo } from "./internal/demo.js"
import { formatBytes, formatRate, parseSize } from "./internal/format.js"
import * as Target from "./internal/target.js"

/**
 * Exit codes, documented in `ezio --help`.
 *
 * @since 0.1.0
 * @category constants
 */
export const ExitCode = {
  ok: 0,
  internal: 1,
  usage: 2,
  badTorrent: 3,
  data: 4,
  network: 5,
  incomplete: 6
} as const

/**
 * Which exit code a failure maps to.
 *
 * @since 0.1.0
 * @category constants
 */
export const exitCodeOf = (exit: Exit.Exit<unknown, unknown>): number => {
  if (Exit.isSuccess(exit)) return ExitCode.ok
  // Ctrl-C and SIGTERM interrupt the program: a clean stop, not a failure.
  if (Cause.isInterruptedOnly(exit.cause)) return ExitCode.ok
  const failure = Cause.failureOption(exit.cause)
  if (Option.isNone(failure)) return ExitCode.internal
  if (ValidationError.isValidationError(failure.value)) return ExitCode.usage
  const error = failure.value as { _tag?: string }
  switch (error._tag) {
    case "ValidationError":
      return ExitCode.usage
    case "MetainfoError":
    case "BencodeError":
      return ExitCode.badTorrent
    case "StorageError":
    case "TargetError":
    case "CreateError":
    case "HashError":
    case "DiskIoError":
      return ExitCode.data
    case "SessionError":
    case "TrackerError":
      return ExitCode.network
    case "Incomplete":
      return ExitCode.incomplete
    default:
      return ExitCode.internal
  }
}

/**
 * A verify or download that ended without every piece.
 *
 * @since 0.1.0
 * @category errors
 */
export class Incomplete extends Error {
  readonly _tag = "Incomplete"
}

const readTorrent = (path: string) =>
  Effect.gen(function* () {
    const bytes = yield* Effect.try({
      try: () => NFS.readFileSync(path),
      catch: (cause) => new Target.TargetError({ path, detail: `cannot read: ${(cause as Error).message}` })
    })
    return yield* Metainfo.decode(bytes)
  })

const isTty = process.stdout.isTTY === true

const poolLayer = (poolSize: string) =>
  Layer.unwrapEffect(
    Effect.map(parseSize(poolSize, "--pool-size"), (capacity) => BufferPool.layer({ capacity, name: "ezio" }))
  )

const engine = (poolSize: string) =>
  DiskIo.layer({ name: "ezio" }).pipe(
    Layer.provideMerge(Hasher.layer()),
    Layer.provideMerge(poolLayer(poolSize))
  )

// ---------------------------------------------------------------------------------------------
// Shared options

const json = Options.boolean("json").pipe(Options.withDescription("Print JSON lines instead of text"))
const poolSize = Options.text("pool-size").pipe(
  Options.withDefault("256MiB"),
  Options.withDescription(
    "Memory for the buffer pool shared by reads, writes and hashing (e.g. 128MiB, 1GiB)"
  )
)
const port = Options.integer("port").pipe(
  Options.withAlias("p"),
  Options.withDefault(6881),
  Options.withDescription("Port to listen on for peers (0 picks a free one)")
)
const bind = Options.text("bind").pipe(
  Options.withDefault("0.0.0.0"),
  Options.withDescription("Address to listen on")
)
const trackers = Options.text("tracker").pipe(
  Options.repeated,
  Options.withDescription("Announce to this tracker URL too (repeatable; tried before the torrent's own)")
)
const serveTracker = Options.boolean("serve-tracker").pipe(
  Options.withDescription("Run an HTTP tracker in this process and announce to it (no other server needed)")
)
const trackerPort = Options.integer("tracker-port").pipe(
  Options.withDefault(6969),
  Options.withDescription("Port of the embedded tracker (--serve-tracker)")
)
const peers = Options.text("peer").pipe(
  Options.repeated,
  Options.withDescription("Connect to this peer, host:port (repeatable)")
)
const uploadSlots = Options.integer("upload-slots").pipe(
  Options.optional,
  Options.withDescription("Peers unchoked at once (default: all, as EZIO does on a LAN)")
)
const rateLimit = Options.text("upload-limit").pipe(
  Options.optional,
  Options.withDescription("Upload limit per second, e.g. 100MiB (default: none)")
)
const slowStart = Options.integer("slow-start").pipe(
  Options.optional,
  Options.withDescription("Ramp the upload rate up over this many seconds (EZIO's --slow-start)")
)

const parsePeer = (text: string) => {
  const at = text.lastIndexOf(":")
  const portNumber = Number(text.slice(at + 1))
  if (at <= 0 || !Number.isInteger(portNumber) || portNumber <= 0 || portNumber > 65535)
    return Effect.fail(new Target.TargetError({ path: text, detail: "a peer must be written host:port" }))
  return Effect.succeed({ host: text.slice(0, at).replace(/^\[|\]$/g, ""), port: portNumber })
}

// ---------------------------------------------------------------------------------------------
// create

const createCommand = Command.make(
  "create",
  {
    path: Args.path({ name: "path", exists: "yes" }).pipe(
      Args.withDescription("A file, a directory, or (with --raw) a disk image or block device")
    ),
    output: Options.file("output").pipe(
      Options.withAlias("o"),
      Options.optional,
      Options.withDescription("Where to write the .torrent (default: <name>.torrent)")
    ),
    raw: Options.boolean("raw").pipe(
      Options.withDescription(
        "Make an EZIO raw-image torrent (files named by hex disk offset; zero space skipped)"
      )
    ),
    partcloneInfo: Options.file("partclone-info", { exists: "yes" }).pipe(
      Options.optional,
      Options.withDescription("With --raw: partclone's torrent.info for the image (used extents and hashes)")
    ),
    granularity: Options.text("granularity").pipe(
      Options.withDefault("1MiB"),
      Options.withDescription("With --raw: all-zero runs of this size are skipped (multiple of 4KiB)")
    ),
    pieceLength: Options.text("piece-length").pipe(
      Options.optional,
      Options.withDescription("Piece length, a power of two >= 16KiB (default: about 1500 pieces)")
    ),
    trackers,
    comment: Options.text("comment").pipe(Options.optional),
    private: Options.boolean("private").pipe(Options.withDescription("Set the private flag (BEP 27)")),
    name: Options.text("name").pipe(Options.optional, Options.withDescription("The torrent's name")),
    json
  },
  (args) =>
    Effect.gen(function* () {
      const pieceLength = Option.isSome(args.pieceLength)
        ? yield* parseSize(args.pieceLength.value, "--piece-length")
        : undefined
      const common = {
        ...(pieceLength !== undefined ? { pieceLength } : {}),
        ...(args.trackers.length > 0 ? { trackers: args.trackers.map((url) => [url]) } : {}),
        ...(Option.isSome(args.comment) ? { comment: args.comment.value } : {}),
        ...(Option.isSome(args.name) ? { name: args.name.value } : {}),
        private: args.private,
        onProgress: (p: Create.Progress) => {
          if (isTty && !args.json)
            process.stdout.write(`\rhashing ${formatBytes(p.hashedBytes)} / ${formatBytes(p.totalBytes)}   `)
        }
      }
      const started = Date.now()
      const meta = args.raw
        ? yield* Create.fromRawImage(args.path, {
            ...common,
            granularity: yield* parseSize(args.granularity, "--granularity"),
            ...(Option.isSome(args.partcloneInfo)
              ? { partcloneInfo: NFS.readFileSync(args.partcloneInfo.value, "utf8") }
              : {})
          })
        : yield* Create.fromPath(args.path, common)
      const output = Option.getOrElse(args.output, () => `${meta.name}.torrent`)
      NFS.writeFileSync(output, Metainfo.encode(meta))
      const seconds = (Date.now() - started) / 1000
      if (isTty && !args.json) process.stdout.write("\r\x1b[K")
      if (args.json)
        yield* Console.log(
          JSON.stringify({
            torrent: output,
            infoHash: meta.infoHashHex,
            pieces: meta.pieceCount,
            bytes: meta.totalLength,
            seconds
          })
        )
      else
        yield* Console.log(
          `created ${output}: ${meta.name}, ${formatBytes(meta.totalLength)} in ${meta.pieceCount} pieces of ${formatBytes(meta.pieceLength)}, info-hash ${meta.infoHashHex} (${seconds.toFixed(1)} s)`
        )
    }).pipe(Effect.provide(Hasher.layer()))
).pipe(Command.withDescription("Create a .torrent from a file, a directory, or a raw disk image"))

// ---------------------------------------------------------------------------------------------
// info

const infoCommand = Command.make(
  "info",
  { torrent: Args.file({ name: "torrent", exists: "yes" }), json },
  ({ json, torrent }) =>
    Effect.gen(function* () {
      const meta = yield* readTorrent(torrent)
      const raw = RawImage.fromMetainfo(meta)
      if (json) {
        return yield* Console.log(
          JSON.stringify({
            name: meta.name,
            infoHash: meta.infoHashHex,
            version: meta.version,
            pieceLength: meta.pieceLength,
            pieces: meta.pieceCount,
            totalLength: meta.totalLength,
            private: meta.private,
            trackers: meta.trackers,
            comment: meta.comment,
            createdBy: meta.createdBy,
            creationDate: meta.creationDate,
            rawImage: Either.isRight(raw)
              ? { extents: raw.right.extents.length, diskEnd: raw.right.diskEnd }
              : null,
            files: meta.files.map((f) => ({ path: f.path.join("/"), length: f.length }))
          })
        )
      }
      const lines = [
        `name:         ${meta.name}`,
        `info-hash:    ${meta.infoHashHex}${meta.version === "hybrid" ? " (hybrid v1+v2; used as v1)" : ""}`,
        `size:         ${formatBytes(meta.totalLength)} (${meta.totalLength} bytes)`,
        `pieces:       ${meta.pieceCount} x ${formatBytes(meta.pieceLength)}`,
        `private:      ${meta.private ? "yes" : "no"}`,
        ...(meta.comment !== undefined ? [`comment:      ${meta.comment}`] : []),
        ...(meta.createdBy !== undefined ? [`created by:   ${meta.createdBy}`] : []),
        ...(meta.creationDate !== undefined
          ? [`created:      ${new Date(meta.creationDate * 1000).toISOString()}`]
          : []),
        ...meta.trackers.map((tier, i) => `tracker tier ${i}: ${tier.join(" ")}`)
      ]
      if (Either.isRight(raw))
        lines.push(
          `raw image:    ${raw.right.extents.length} used extents; the target must hold ${formatBytes(raw.right.diskEnd)}`
        )
      else {
        lines.push(`files:        ${meta.files.length}`)
        for (const f of meta.files.slice(0, 20))
          lines.push(`  ${formatBytes(f.length).padStart(10)}  ${f.path.join("/")}`)
        if (meta.files.length > 20) lines.push(`  ... and ${meta.files.length - 20} more`)
      }
      yield* Console.log(lines.join("\n"))
    })
).pipe(Command.withDescription("Show what a .torrent holds"))

// ---------------------------------------------------------------------------------------------
// verify

const check = (storage: Parameters<typeof Check.check>[0], meta: Metainfo.Metainfo, quiet: boolean) =>
  Check.check(storage, {
    pieceHashes: meta.pieces,
    onProgress: (p) => {
      if (isTty && !quiet)
        process.stdout.write(`\rchecking ${p.checked}/${p.total} pieces, ${p.have} good   `)
    }
  }).pipe(Effect.tap(() => Effect.sync(() => isTty && !quiet && process.stdout.write("\r\x1b[K"))))

const verifyCommand = Command.make(
  "verify",
  {
    torrent: Args.file({ name: "torrent", exists: "yes" }),
    data: Args.path({ name: "data" }).pipe(
      Args.withDescription("The file, directory, image or block device")
    ),
    json,
    poolSize
  },
  (args) =>
    Effect.gen(function* () {
      const meta = yield* readTorrent(args.torrent)
      const { storage } = yield* Target.open({ metainfo: meta, data: args.data, mode: "read" })
      const started = Date.now()
      const have = yield* check(storage, meta, args.json)
      const good = Bitfield.count(have)
      const seconds = (Date.now() - started) / 1000
      if (args.json)
        yield* Console.log(
          JSON.stringify({ pieces: meta.pieceCount, good, complete: good === meta.pieceCount, seconds })
        )
      else
        yield* Console.log(
          `${good}/${meta.pieceCount} pieces good (${formatRate(meta.totalLength / Math.max(seconds, 0.001))}, ${seconds.toFixed(1)} s)`
        )
      if (good !== meta.pieceCount)
        return yield* Effect.fail(new Incomplete(`${meta.pieceCount - good} piece(s) missing or corrupt`))
    }).pipe(Effect.scoped, Effect.provide(engine(args.poolSize)))
).pipe(Command.withDescription("Check data against a .torrent's piece hashes"))

// ---------------------------------------------------------------------------------------------
// seed and download share one loop

interface RunArgs {
  readonly torrent: string
  readonly data: string
  readonly port: number
  readonly bind: string
  readonly trackers: ReadonlyArray<string>
  readonly serveTracker: boolean
  readonly trackerPort: number
  readonly peers: ReadonlyArray<string>
  readonly json: boolean
  readonly uploadSlots: Option.Option<number>
  readonly uploadLimit: Option.Option<string>
  readonly slowStart: Option.Option<number>
}

const serve = (args: RunArgs, mode: "seed" | "download", trust: boolean, exitWhenDone: boolean) =>
  Effect.gen(function* () {
    const meta = yield* readTorrent(args.torrent)
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
    const uploadLimit = Option.isSome(args.uploadLimit)
      ? yield* parseSize(args.uploadLimit.value, "--upload-limit")
      : 0
    const session = yield* Session.make({ host: args.bind, port: args.port })
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
    if (args.serveTracker) {
      const embedded = yield* EmbeddedTracker.make({ host: args.bind, port: args.trackerPort })
      trackerUrl = embedded.url
      tiers.push([embedded.url])
    }
    if (args.trackers.length > 0) tiers.push([...args.trackers])
    tiers.push(...meta.trackers.map((tier) => [...tier]))
    if (tiers.length > 0) {
      const tracker = yield* Tracker.make()
      yield* swarm.announce(tracker, {
        tiers,
        minInterval: "5 seconds",
        retryDelay: "5 seconds",
        onFailure: (errors) =>
          Effect.logWarning(`every tracker failed: ${errors.map((e) => e.message).join("; ")}`)
      })
    }
    for (const text of args.peers) {
      const peer = yield* parsePeer(text)
      yield* swarm.connect(peer.host, peer.port)
    }

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
    yield* Console.log(
      args.json
        ? JSON.stringify(ready)
        : `ready: ${mode === "seed" ? "seeding" : "downloading"} ${meta.name} (${meta.infoHashHex}) on ${ready.listen}${trackerUrl !== undefined ? `, tracker ${trackerUrl}` : ""}`
    )

    const pool = yield* BufferPool.BufferPool
    const started = Date.now()
    let lastLine = 0
    const report = Effect.sync(() => {
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
        `  pool ${poolUse}`
      if (isTty) process.stdout.write(`\r\x1b[K${line}`)
      else if (Date.now() - lastLine >= 10_000) {
        lastLine = Date.now()
        console.log(line)
      }
    })
    yield* Effect.addFinalizer(() =>
      Effect.sync(() => {
        const s = swarm.unsafeStatus()
        if (isTty && !args.json) process.stdout.write("\n")
        const summary = {
          event: "stopped",
          seconds: (Date.now() - started) / 1000,
          uploaded: s.uploaded,
          downloaded: s.downloaded,
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
    const reporting = Effect.repeat(report, Schedule.spaced("1 second"))
    if (mode === "download" && exitWhenDone) {
      yield* Effect.raceFirst(reporting, swarm.complete)
      const disk = yield* DiskIo.DiskIo
      yield* disk.sync(swarm.disk)
      yield* Console.log(
        args.json ? JSON.stringify({ event: "complete" }) : `\ncomplete: ${meta.name} verified`
      )
      return
    }
    if (mode === "download")
      yield* Effect.fork(
        Effect.zipRight(
          swarm.complete,
          Console.log(
            args.json ? JSON.stringify({ event: "complete" }) : `\ncomplete: ${meta.name}; seeding on`
          )
        )
      )
    return yield* reporting.pipe(Effect.zipRight(Effect.never))
  })

const seedCommand = Command.make(
  "seed",
  {
    torrent: Args.file({ name: "torrent", exists: "yes" }),
    data: Args.path({ name: "data" }).pipe(
      Args.withDescription("The file, directory, image or block device to serve")
    ),
    port,
    bind,
    trackers,
    serveTracker,
    trackerPort,
    peers,
    json,
    poolSize,
    uploadSlots,
    uploadLimit: rateLimit,
    slowStart,
    trust: Options.boolean("trust").pipe(
      Options.withDescription("Skip checking the data against the piece hashes before serving")
    )
  },
  (args) => serve(args, "seed", args.trust, false).pipe(Effect.scoped, Effect.provide(engine(args.poolSize)))
).pipe(Command.withDescription("Serve a torrent's data to peers until interrupted (Ctrl-C, SIGTERM)"))

const downloadCommand = Command.make(
  "download",
  {
    torrent: Args.file({ name: "torrent", exists: "yes" }),
    data: Args.path({ name: "target" }).pipe(
      Args.withDescription("Where the data goes: a file, a directory, an image or a block device")
    ),
    port,
    bind,
    trackers,
    serveTracker,
    trackerPort,
    peers,
    json,
    poolSize,
    uploadSlots,
    uploadLimit: rateLimit,
    slowStart,
    exit: Options.boolean("exit").pipe(
      Options.withDescription("Exit once every piece is written and verified, instead of seeding on")
    )
  },
  (args) =>
    serve(args, "download", false, args.exit).pipe(Effect.scoped, Effect.provide(engine(args.poolSize)))
).pipe(
  Command.withDescription(
    "Download a torrent into a target while seeding what it has to the others; seeds on when done unless --exit"
  )
)

const demoCommand = Command.make(
  "demo",
  {
    size: Options.text("size").pipe(
      Options.withDefault("64MiB"),
      Options.withDescription("Size of the sample image")
    ),
    keep: Options.boolean("keep").pipe(Options.withDescription("Keep the demo's files"))
  },
  (args) => Effect.flatMap(parseSize(args.size, "--size"), (size) => runDemo({ size, keep: args.keep }))
).pipe(
  Command.withDescription(
    "Make a sample disk image, create its raw-image torrent, seed it with an embedded tracker and download it once over 127.0.0.1"
  )
)

const root = Command.make("ezio").pipe(
  Command.withDescription(
    [
      "Deploy disk images over BitTorrent: `ezio seed` on the source, `ezio download` on every target.",
      "Exit codes: 0 done (also after Ctrl-C or SIGTERM), 1 internal error, 2 bad arguments, 3 invalid torrent,",
      "4 data error (missing, too small, unreadable, disk full), 5 network error (cannot listen), 6 data incomplete."
    ].join(" ")
  ),
  Command.withSubcommands([
    createCommand,
    infoCommand,
    seedCommand,
    downloadCommand,
    verifyCommand,
    demoCommand
  ])
)

/**
 * Runs the CLI on `argv` (as `process.argv`).
 *
 * @since 0.1.0
 * @category constructors
 */
export const run = Command.run(root, { name: "ezio", version: "0.1.0" })
