/**
 * A real download from `ezio seed` (in its own process) over 127.0.0.1, without and then with an
 * attack on the seeder: 200 peers that complete the handshake and then idle, and 60 that ask for
 * a full request queue and never read. Prints both downloads' MiB/s (from the first dial to the
 * last verified piece, including the wait for a slot), the ratio, and the seeder's peak anonymous
 * memory in each phase (RssAnon, sampled from /proc every 50 ms) against its pool size.
 * Goals: attacked speed >= 80% of unattacked, peak anonymous memory <= pool + 100 MiB.
 *
 *   npx tsx packages/peer/bench/hostile.ts   (EZIO_BENCH_MIB=256, EZIO_BENCH_DIR=os.tmpdir(),
 *                                             EZIO_BENCH_POOL_MIB=64, EZIO_BENCH_IDLE=200,
 *                                             EZIO_BENCH_STALLED=60)
 */
import * as NChild from "node:child_process"
import * as NFS from "node:fs"
import * as NOS from "node:os"
import * as NPath from "node:path"
import { DiskIo } from "@ezio/disk-io"
import { Session } from "@ezio/peer"
import { BufferPool } from "@ezio/pool"
import { Hasher, Layout, Storage } from "@ezio/storage"
import { Metainfo } from "@ezio/torrent"
import { Effect, Either, Layer, Schedule } from "effect"
import { hostilePeers } from "../test/hostilePeers.js"
import { ezioSeedArgs, makeSource, sampler } from "./support.js"

const mib = Number(process.env.EZIO_BENCH_MIB ?? 256)
const poolMiB = Number(process.env.EZIO_BENCH_POOL_MIB ?? 64)
const idleCount = Number(process.env.EZIO_BENCH_IDLE ?? 200)
const stalledCount = Number(process.env.EZIO_BENCH_STALLED ?? 60)
const root = NFS.mkdtempSync(NPath.join(process.env.EZIO_BENCH_DIR ?? NOS.tmpdir(), "ezio-bench-hostile-"))
/**
 * The seeder as users run it: `dist/ezio` (pnpm build:sea) when there is one, else the sources
 * through tsx (whose loader adds its own memory to the seeder's).
 */
const sea = NPath.resolve(import.meta.dirname, "../../../dist/ezio")
const seedCommand = NFS.existsSync(sea)
  ? [sea]
  : [process.execPath, "--import", "tsx", NPath.resolve(import.meta.dirname, "../../cli/src/bin.ts")]

/** `ezio seed` in its own process; its port once ready. */
const seeder = (torrent: string, data: string) =>
  Effect.gen(function* () {
    const child = NChild.spawn(
      seedCommand[0]!,
      [...seedCommand.slice(1), ...ezioSeedArgs(torrent, data, `${poolMiB}MiB`)],
      { stdio: ["ignore", "pipe", "inherit"] }
    )
    yield* Effect.addFinalizer(() => Effect.sync(() => child.exitCode === null && child.kill("SIGTERM")))
    const port = yield* Effect.async<number, Error>((resume) => {
      let buffered = ""
      child.stdout!.on("data", (chunk: Buffer) => {
        buffered += chunk.toString()
        const ready = buffered.split("\n").find((line) => line.includes('"event":"ready"'))
        if (ready !== undefined) resume(Effect.succeed(Number(JSON.parse(ready).listen.split(":").pop())))
      })
      child.once("exit", (code) => resume(Effect.fail(new Error(`ezio seed exited with ${code}`))))
    })
    return { pid: child.pid!, port }
  })

/** Downloads the torrent from `port` into memory; MiB/s from the first dial to completion. */
const download = (meta: Metainfo.Metainfo, port: number) =>
  Effect.gen(function* () {
    const layout = Either.getOrThrow(Layout.fromMetainfo(meta))
    const session = yield* Session.make({ host: "127.0.0.1", port: 0, listen: false })
    const swarm = yield* session.add({ metainfo: meta, storage: yield* Storage.makeMemory({ layout }) })
    const started = performance.now()
    // Dial again every second, as a tracker's answers would, until a slot opens.
    yield* Effect.forkScoped(Effect.repeat(swarm.connect("127.0.0.1", port), Schedule.spaced("1 second")))
    // When the seeder first let it in, and pieces verified every half second (where time went).
    let slot: number | undefined
    const timeline: Array<number> = []
    yield* Effect.forkScoped(
      Effect.repeat(
        Effect.sync(() => {
          const status = swarm.unsafeStatus()
          if (slot === undefined && status.peers > 0) slot = (performance.now() - started) / 1000
          timeline.push(status.have)
        }),
        Schedule.spaced("500 millis")
      )
    )
    yield* swarm.complete.pipe(Effect.timeout("300 seconds"))
    const seconds = (performance.now() - started) / 1000
    if (swarm.unsafeStatus().hashFailures !== 0) throw new Error("hash failures in the download")
    return { rate: meta.totalLength / 1024 / 1024 / seconds, seconds, slot: slot ?? seconds, timeline }
  }).pipe(
    Effect.scoped,
    Effect.provide(
      DiskIo.layer().pipe(
        Layer.provideMerge(Hasher.layer({ threads: 2 })),
        Layer.provideMerge(BufferPool.layer({ capacity: 64 * 1024 * 1024 }))
      )
    )
  )

const main = Effect.gen(function* () {
  const { data, torrent } = yield* makeSource(root, mib)
  const meta = Either.getOrThrow(Metainfo.decode(NFS.readFileSync(torrent)))
  const seed = yield* seeder(torrent, data)
  let memory = sampler(seed.pid)
  const plain = yield* download(meta, seed.port)
  const plainPeak = memory.stop()

  memory = sampler(seed.pid)
  const hostile = hostilePeers(seed.port, meta)
  const stalled = yield* hostile.neverRead(stalledCount, 500)
  const idle = yield* hostile.idle(idleCount)
  yield* Effect.sleep("1 second")
  const attacked = yield* download(meta, seed.port)
  stalled.stop()
  for (const s of idle) s.destroy()
  const peak = memory.stop()

  const load = NOS.loadavg()
    .map((l) => l.toFixed(2))
    .join(" ")
  console.log(
    `\na ${mib} MiB download from ezio seed (pool ${poolMiB} MiB) over 127.0.0.1, 1 MiB pieces; seeder ${NFS.existsSync(sea) ? "dist/ezio" : "tsx sources"}; load ${load} on ${NOS.cpus().length} cores\n`
  )
  console.log("| download | MiB/s | seconds | in (s) |")
  console.log("| --- | ---: | ---: | ---: |")
  const row = (name: string, r: typeof plain) =>
    console.log(`| ${name} | ${r.rate.toFixed(0)} | ${r.seconds.toFixed(2)} | ${r.slot.toFixed(2)} |`)
  row("alone", plain)
  row(`beside ${idleCount} idle and ${stalledCount} never-reading peers`, attacked)
  console.log(`\npieces verified every 0.5 s, attacked: ${attacked.timeline.join(" ")}`)
  console.log(`\nattacked / alone: ${(attacked.rate / plain.rate).toFixed(2)} (goal >= 0.80)`)
  console.log(
    `seeder peak anonymous memory: ${plainPeak.toFixed(0)} MiB alone, ${peak.toFixed(0)} MiB attacked (goal <= pool + 100 = ${poolMiB + 100} MiB)`
  )
})

Effect.runPromise(
  main.pipe(
    Effect.scoped,
    Effect.ensuring(Effect.sync(() => NFS.rmSync(root, { recursive: true, force: true })))
  )
).catch((error) => {
  console.error(error)
  process.exitCode = 1
})
