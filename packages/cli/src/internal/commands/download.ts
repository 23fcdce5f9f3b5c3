// `ezio download`: fetch one or more torrents (a disk: one per partition) each into its target
// while seeding what it has; once all are complete, seed while the swarm needs it, then exit.
import * as Args from "@effect/cli/Args"
import * as Command from "@effect/cli/Command"
import * as Options from "@effect/cli/Options"
import * as Effect from "effect/Effect"
import * as Option from "effect/Option"
import { torrentArg } from "../common.js"
import * as Finish from "../finish.js"
import { serve, serveOptions } from "../serve.js"

export const download = Command.make(
  "download",
  {
    pairs: Args.all({
      torrent: torrentArg,
      data: Args.path({ name: "target" }).pipe(
        Args.withDescription(
          "Where the data of the torrent just before it goes: a file or a block device (a single-file torrent, written from the device's offset 0), a directory (multi-file), an image file or a block device (raw image). Several partitions: give torrent/target pairs, e.g. sda1.torrent /dev/sda1 sda2.torrent /dev/sda2"
        )
      )
    }).pipe(Args.atLeast(1)),
    ...serveOptions,
    ...Finish.finishOptions,
    name: Options.text("name").pipe(
      Options.optional,
      Options.withDescription("A name for this target in the seeder's deploy view (default: its address)")
    )
  },
  (args) =>
    Effect.flatMap(Finish.policyOf(args), (finish) =>
      serve(args, "download", false, args.exit, {
        finish,
        ...(Option.isSome(args.name) ? { name: args.name.value } : {})
      })
    )
).pipe(
  Command.withDescription(
    "Download a torrent into a target (or several torrent/target pairs, one per partition, over one session and pool) while seeding what it has to the others; once all are complete, seeds while peers still need it, then exits (--exit: at once, --seed: until stopped)"
  )
)
