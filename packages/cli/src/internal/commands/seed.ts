// `ezio seed`: serve a torrent's data until interrupted.
import { Args, Command, Options } from "@effect/cli"
import { torrentArg } from "../common.js"
import { serve, serveOptions } from "../serve.js"

export const seed = Command.make(
  "seed",
  {
    torrent: torrentArg,
    data: Args.path({ name: "data" }).pipe(
      Args.withDescription(
        "What to serve: a file or a block device (a single-file torrent, from the device's offset 0), a directory (multi-file), an image file or a block device (raw image)"
      )
    ),
    ...serveOptions,
    trust: Options.boolean("trust").pipe(
      Options.withDescription("Skip checking the data against the piece hashes before serving")
    )
  },
  (args) => serve(args, "seed", args.trust, false)
).pipe(Command.withDescription("Serve a torrent's data to peers until interrupted (Ctrl-C, SIGTERM)"))
