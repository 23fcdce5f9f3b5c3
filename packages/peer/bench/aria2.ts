/**
 * A second client's view of the seeders (`bench/matrix.ts` has libtorrent and transmission-cli
 * downloading): `ezio seed` and python3-libtorrent (its defaults, and `high_performance_seed()`)
 * each seed one file to aria2c over 127.0.0.1, through Debian's opentracker (aria2 learns peers
 * only from a tracker). Rounds are interleaved (each starts one seeder further on); it prints, per
 * seeder, the median MiB/s with its range, from aria2's first peer handshake to "download
 * complete" in its log, and every copy is checked byte-identical outside the timing.
 *
 *   npx tsx packages/peer/bench/aria2.ts
 *     EZIO_BENCH_MIB=1024  EZIO_BENCH_ROUNDS=3  EZIO_BENCH_POOL=64MiB
 *     EZIO_BENCH_DIR=/dev/shm if it exists, else os.tmpdir()
 *
 * ezio runs as the installed command does (the bundle, built first by `node scripts/bundle.mjs`).
 */
import * as NChild from "node:child_process"
import * as NFS from "node:fs"
import * as NOS from "node:os"
import * as NPath from "node:path"
import { Bencode } from "@ezio/torrent"
import {
  aria2Download,
  hasAria2,
  hasLibtorrent,
  libtorrentSeed,
  spawnScoped
} from "@ezio/test-support/clients"
import { hasOpentracker, opentracker } from "@ezio/test-support"
import { Deferred, Effect } from "effect"
import { ezioSeedArgs, identical, makeSource, median, withAnnounce } from "./support.js"

const mib = Number(process.env.EZIO_BENCH_MIB ?? 1024)
const rounds = Number(process.env.EZIO_BENCH_ROUNDS ?? 3)
const poolSize = process.env.EZIO_BENCH_POOL ?? "64MiB"
const baseDir = process.env.EZIO_BENCH_DIR ?? (NFS.existsSync("/dev/shm") ? "/dev/shm" : NOS.tmpdir())
const repo = NPath.resolve(import.meta.dirname, "../../..")
const timeoutMs = 120_000 + mib * 250

type Seeder = "ezio" | "lt-default" | "lt-hps"
const SEEDERS: ReadonlyArray<Seeder> = ["ezio", "lt-default", "lt-hps"]
const NAME: Record<Seeder, string> = {
  ezio: "ezio seed",
  "lt-default": "libtorrent default",
  "lt-hps": "libtorrent high_performance_seed"
}

/** Starts `kind` seeding `torrent` (it announces to the torrent's tracker); resolves once listening. */
const seed = (kind: Seeder, torrent: string, data: string, dir: string) => {
  if (kind !== "ezio")
    return libtorrentSeed({
      torrent,
      saveDir: dir,
      preset: kind === "lt-default" ? "default" : "high-performance",
      timeoutMs: timeoutMs * 2
    }).pipe(
      Effect.asVoid,
      Effect.mapError((e) => new Error(`${e.message}: ${e.stderr ?? ""}`))
    )
  return Effect.gen(function* () {
    const ready = yield* Deferred.make<void>()
    const child = yield* spawnScoped(
      process.execPath,
      [NPath.join(repo, "packages/cli/bin/run-bundle.cjs"), ...ezioSeedArgs(torrent, data, poolSize)],
      {
        onLine: (line) => {
          if (line.startsWith('{"event":"ready"')) Deferred.unsafeDone(ready, Effect.void)
        }
      }
    )
    yield* Effect.raceFirst(
      Deferred.await(ready),
      Effect.flatMap(child.exited, (code) =>
        Effect.fail(new Error(`ezio seed exited with ${code}: ${child.stderr()}`))
      )
    ).pipe(Effect.timeoutFail({ duration: "60 seconds", onTimeout: () => new Error("ezio seed: not ready") }))
  })
}

const main = Effect.gen(function* () {
  if (!hasAria2 || !hasLibtorrent || !hasOpentracker) {
    console.log(
      "needs aria2c, python3-libtorrent and opentracker (apt-get install -y aria2 python3-libtorrent opentracker): skipping"
    )
    return
  }
  NChild.execFileSync(process.execPath, [NPath.join(repo, "scripts/bundle.mjs")], { stdio: "inherit" })
  const root = NFS.mkdtempSync(NPath.join(baseDir, "ezio-bench-aria2-"))
  yield* Effect.addFinalizer(() => Effect.sync(() => NFS.rmSync(root, { recursive: true, force: true })))
  const source = yield* makeSource(root, mib)
  const tracker = yield* opentracker([Buffer.from(source.infoHash, "hex")])
  // The same torrent, announcing to the tracker.
  const torrent = NPath.join(root, "tracker.torrent")
  const decoded = Bencode.decodeDict(NFS.readFileSync(source.torrent))
  if (decoded._tag !== "Right") return yield* Effect.fail(new Error(`${source.torrent}: not a torrent`))
  withAnnounce(decoded.right.value, `http://127.0.0.1:${tracker.port}/announce`, torrent)
  const rates: Record<Seeder, Array<number>> = { ezio: [], "lt-default": [], "lt-hps": [] }
  for (let round = 0; round < rounds; round++) {
    for (let k = 0; k < SEEDERS.length; k++) {
      const kind = SEEDERS[(k + round) % SEEDERS.length]!
      const out = NPath.join(root, "out")
      NFS.rmSync(out, { recursive: true, force: true })
      NFS.mkdirSync(out)
      const result = yield* Effect.scoped(
        Effect.gen(function* () {
          yield* seed(kind, torrent, source.data, source.dir)
          // Let its announce land before aria2 asks (aria2 does not retry soon).
          yield* Effect.sleep("1500 millis")
          return yield* aria2Download({ torrent, dir: out, timeoutMs })
        })
      )
      const copy = NPath.join(out, NPath.basename(source.data))
      const seconds = result.transfer_seconds ?? result.seconds
      if (!result.done || !identical(copy, source.data))
        return yield* Effect.fail(
          new Error(`${NAME[kind]} → aria2c failed: ${JSON.stringify(result).slice(0, 500)}`)
        )
      const rate = mib / seconds
      rates[kind].push(rate)
      console.error(`round ${round + 1}: ${NAME[kind]} → aria2c: ${rate.toFixed(0)} MiB/s`)
    }
  }
  console.log(
    `\n${mib} MiB file, 1 MiB pieces, 127.0.0.1, ${rounds} interleaved round(s), aria2c downloading; median (range)\n`
  )
  console.log("| seeder | MiB/s to aria2c |\n| --- | ---: |")
  for (const s of SEEDERS) {
    const r = rates[s]
    console.log(
      `| ${NAME[s]} | ${median(r).toFixed(0)} (${Math.min(...r).toFixed(0)}–${Math.max(...r).toFixed(0)}) |`
    )
  }
  const ours = median(rates.ezio)
  const theirs = median(rates["lt-hps"])
  console.log(`\nezio seed / libtorrent high_performance_seed, to aria2c: ${(ours / theirs).toFixed(2)}`)
})

Effect.runPromise(Effect.scoped(main)).catch((e) => {
  console.error(e)
  process.exit(1)
})
