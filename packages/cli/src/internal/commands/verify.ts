// `ezio verify`: re-hash the data against a .torrent's piece hashes.
import * as Args from "@effect/cli/Args"
import * as Command from "@effect/cli/Command"
import { Bitfield } from "@ezio/storage"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import { check, emit, engine, json, poolSize, readTorrent, torrentArg } from "../common.js"
import { Incomplete } from "../errors.js"
import { formatRate } from "../format.js"
import * as Target from "../target.js"

export const verify = Command.make(
  "verify",
  {
    torrent: torrentArg,
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
      const [elapsed, have] = yield* Effect.timed(check(storage, meta, args.json))
      const good = Bitfield.count(have)
      const seconds = Duration.toSeconds(elapsed)
      yield* emit(
        args.json,
        { pieces: meta.pieceCount, good, complete: good === meta.pieceCount, seconds },
        `${good}/${meta.pieceCount} pieces good (${formatRate(meta.totalLength / Math.max(seconds, 0.001))}, ${seconds.toFixed(1)} s)`
      )
      if (good !== meta.pieceCount)
        return yield* new Incomplete({
          path: args.data,
          missing: meta.pieceCount - good,
          pieces: meta.pieceCount
        })
    }).pipe(Effect.scoped, Effect.provide(engine(args.poolSize)))
).pipe(Command.withDescription("Check data against a .torrent's piece hashes"))
