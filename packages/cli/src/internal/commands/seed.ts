// `ezio seed`: serve one or more torrents' data (a disk: one per partition, all from one pool,
// session and tracker) until interrupted, or, with --expect, until the deploy is done.
import * as Args from "@effect/cli/Args"
import * as Command from "@effect/cli/Command"
import * as Options from "@effect/cli/Options"
import * as Effect from "effect/Effect"
import { torrentArg } from "../common.js"
import * as DeployWatch from "../deployWatch.js"
import { serve, serveOptions } from "../serve.js"

export const seed = Command.make(
  "seed",
  {
    pairs: Args.all({
      torrent: torrentArg,
      data: Args.path({ name: "data" }).pipe(
        Args.withDescription(
          "What to serve for the torrent just before it: a file or a block device (a single-file torrent, from the device's offset 0), a directory (multi-file), an image file or a block device (raw image). Several partitions: give torrent/data pairs, e.g. sda1.torrent sda1.img sda2.torrent sda2.img"
        )
      )
    }).pipe(Args.atLeast(1)),
    ...serveOptions,
    ...DeployWatch.deployOptions,
    trust: Options.boolean("trust").pipe(
      Options.withDescription("Skip checking the data against the piece hashes before serving")
    )
  },
  (args) =>
    Effect.zipRight(
      DeployWatch.check(args),
      serve(args, "seed", args.trust, false, args.serveTracker ? { deploy: args } : {})
    )
).pipe(
  Command.withDescription(
    "Serve a torrent's data (or several torrent/data pairs, one per partition, from one session and pool) to peers until interrupted (Ctrl-C, SIGTERM); with --serve-tracker it follows the deploy, and --expect N ends it"
  )
)
