// `ezio download`: fetch a torrent into a target while seeding what it has.
import { Args, Command, Options } from "@effect/cli"
import { torrentArg } from "../common.js"
import { serve, serveOptions } from "../serve.js"

export const download = Command.make(
  "download",
  {
    torrent: torrentArg,
    data: Args.path({ name: "target" }).pipe(
      Args.withDescription(
        "Where the data goes: a file or a block device (a single-file torrent, written from the device's offset 0), a directory (multi-file), an image file or a block device (raw image)"
      )
    ),
    ...serveOptions,
    exit: Options.boolean("exit").pipe(
      Options.withDescription("Exit once every piece is written and verified, instead of seeding on")
    )
  },
  (args) => serve(args, "download", false, args.exit)
).pipe(
  Command.withDescription(
    "Download a torrent into a target while seeding what it has to the others; seeds on when done unless --exit"
  )
)
