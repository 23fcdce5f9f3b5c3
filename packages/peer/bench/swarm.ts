/**
 * A deploy on a LAN: 1 seeder + N targets, each host in a network namespace of its own on one
 * bridge, every link shaped to the same rate both ways, everything launched at once. First with
 * ezio everywhere (`ezio seed --serve-tracker --trust`, `ezio download --tracker`), then, in the
 * same run and on the same LAN, with python3-libtorrent peers at their default settings (seeding
 * on until every target is done) and Debian's opentracker.
 *
 * Prints per target the time to complete from launch and the payload bytes it downloaded and
 * uploaded; per swarm the last completion, the ideal (size / link rate), efficiency (ideal / last),
 * seeder bytes sent / size, bytes sent by all / bytes kept, and libtorrent's time / ezio's.
 * Every copy is checked byte-identical. Needs root and iproute2; skips with a reason otherwise.
 *
 * Run `pnpm build:sea` first so the targets run dist/ezio (else they compile the sources at start).
 *
 *   pnpm bench:swarm        EZIO_SWARM="8@50,16@25" (targets@Mbit/s, one swarm each),
 *                           EZIO_SWARM_MIB (default 128 for the first, 64 after),
 *                           EZIO_SWARM_CLIENTS="ezio,libtorrent"
 */
import * as NChild from "node:child_process"
import * as NFS from "node:fs"
import * as NOS from "node:os"
import * as NPath from "node:path"
import * as NReadline from "node:readline"
import { Effect } from "effect"
import { type Host, type Lan, makeLan, unavailable } from "./netns.js"
import { identical, makeSource } from "./support.js"

const here = import.meta.dirname
const LT_PEER = NPath.join(here, "lt_swarm_peer.py")
const OPENTRACKER = "/usr/bin/opentracker"
const PYTHON = "/usr/bin/python3"

/**
 * The ezio command: `dist/ezio` (pnpm build:sea) when there is one, as a live-booted target runs
 * it (start-up counts: every target starts at once), else the sources through tsx.
 */
const ezioCommand = (): Array<string> => {
  const sea = NPath.resolve(here, "../../../dist/ezio")
  if (NFS.existsSync(sea)) return [sea]
  return [process.execPath, NPath.resolve(here, "../../cli/bin/ezio.mjs")]
}

interface Peer {
  readonly name: string
  readonly host: Host
  readonly child: NChild.ChildProcess
  completeAt: number | undefined
  stopped: { readonly uploaded: number; readonly downloaded: number } | undefined
  exited: Promise<number | null>
  stderr: string
}

const spawnPeer = (lan: Lan, name: string, host: Host, argv: ReadonlyArray<string>, launch: number): Peer => {
  const [command, args] = lan.exec(host, argv[0]!, argv.slice(1))
  const child = NChild.spawn(command, args, { stdio: ["ignore", "pipe", "pipe"] })
  const peer: Peer = {
    name,
    host,
    child,
    completeAt: undefined,
    stopped: undefined,
    stderr: "",
    exited: new Promise((resolve) => child.once("exit", (code) => resolve(code)))
  }
  child.stderr!.on("data", (d: Buffer) => {
    if (peer.stderr.length < 20_000) peer.stderr += d.toString()
  })
  NReadline.createInterface({ input: child.stdout! }).on("line", (line) => {
    let event: { event?: string; uploaded?: number; downloaded?: number }
    try {
      event = JSON.parse(line)
    } catch {
      return
    }
    if (event.event === "complete" && peer.completeAt === undefined)
      peer.completeAt = (Date.now() - launch) / 1000
    if (event.event === "stopped")
      peer.stopped = { uploaded: event.uploaded ?? 0, downloaded: event.downloaded ?? 0 }
  })
  return peer
}

const stopAll = async (peers: ReadonlyArray<Peer>) => {
  for (const p of peers) if (p.child.exitCode === null && p.child.pid !== undefined) p.child.kill("SIGTERM")
  const bound = setTimeout(() => {
    for (const p of peers) if (p.child.exitCode === null) p.child.kill("SIGKILL")
  }, 15_000)
  await Promise.all(peers.map((p) => p.exited))
  clearTimeout(bound)
}

interface Result {
  readonly client: string
  readonly targets: ReadonlyArray<{
    readonly name: string
    readonly seconds: number | undefined
    readonly downloaded: number
    readonly uploaded: number
    readonly identical: boolean
  }>
  readonly seederSent: number
  readonly last: number | undefined
}

const runSwarm = async (
  client: "ezio" | "libtorrent",
  lan: Lan,
  files: {
    readonly data: string
    readonly ezioTorrent: string
    readonly ltTorrent: string
    readonly root: string
    readonly infoHash: string
  },
  deadlineSeconds: number
): Promise<Result> => {
  const [seedHost, ...targetHosts] = lan.hosts
  const trackerUrl = `http://${seedHost!.ip}:6969/announce`
  const runDir = NFS.mkdtempSync(NPath.join(files.root, `${client}-`))
  NFS.chmodSync(runDir, 0o755)
  const peers: Array<Peer> = []
  const launch = Date.now()
  try {
    if (client === "ezio") {
      const ezio = ezioCommand()
      peers.push(
        spawnPeer(
          lan,
          "seeder",
          seedHost!,
          [
            ...ezio,
            "seed",
            files.ezioTorrent,
            files.data,
            "--trust",
            "--serve-tracker",
            "--bind",
            seedHost!.ip,
            "--json"
          ],
          launch
        )
      )
      targetHosts.forEach((host, i) => {
        const out = NPath.join(runDir, `t${i}`)
        NFS.mkdirSync(out)
        peers.push(
          spawnPeer(
            lan,
            `target ${i + 1}`,
            host,
            [
              ...ezio,
              "download",
              files.ezioTorrent,
              NPath.join(out, "data.bin"),
              "--bind",
              host.ip,
              "--tracker",
              trackerUrl,
              "--json"
            ],
            launch
          )
        )
      })
    } else {
      // opentracker as Debian builds it (whitelist): it chroots into its rootdir and drops to nobody.
      const otDir = NPath.join(runDir, "opentracker")
      NFS.mkdirSync(otDir, { mode: 0o755 })
      NFS.chmodSync(otDir, 0o755)
      NFS.writeFileSync(NPath.join(otDir, "whitelist"), `${files.infoHash}\n`, { mode: 0o644 })
      NFS.writeFileSync(
        NPath.join(otDir, "opentracker.conf"),
        `listen.tcp_udp ${seedHost!.ip}:6969\ntracker.rootdir ${otDir}\naccess.whitelist whitelist\n`,
        { mode: 0o644 }
      )
      peers.push(
        spawnPeer(
          lan,
          "opentracker",
          seedHost!,
          [OPENTRACKER, "-f", NPath.join(otDir, "opentracker.conf")],
          launch
        )
      )
      peers.push(
        spawnPeer(
          lan,
          "seeder",
          seedHost!,
          [
            PYTHON,
            LT_PEER,
            "--torrent",
            files.ltTorrent,
            "--save",
            NPath.dirname(files.data),
            "--bind",
            seedHost!.ip,
            "--seed"
          ],
          launch
        )
      )
      targetHosts.forEach((host, i) => {
        const out = NPath.join(runDir, `t${i}`)
        NFS.mkdirSync(out)
        peers.push(
          spawnPeer(
            lan,
            `target ${i + 1}`,
            host,
            [PYTHON, LT_PEER, "--torrent", files.ltTorrent, "--save", out, "--bind", host.ip],
            launch
          )
        )
      })
    }
    const targets = peers.filter((p) => p.name.startsWith("target"))
    const deadline = launch + deadlineSeconds * 1000
    while (Date.now() < deadline && targets.some((t) => t.completeAt === undefined)) {
      // A target that completed may exit 0 on its own once the swarm no longer needs it.
      const died = peers.find(
        (p) =>
          p.child.exitCode !== null &&
          p.name !== "opentracker" &&
          !(p.completeAt !== undefined && p.child.exitCode === 0)
      )
      if (died !== undefined) {
        console.error(
          `${client} ${died.name} exited early (${died.child.exitCode}):\n${died.stderr.slice(-2000)}`
        )
        break
      }
      await new Promise((r) => setTimeout(r, 100))
    }
    await stopAll(peers)
    const seeder = peers.find((p) => p.name === "seeder")!
    const rows = targets.map((t, i) => ({
      name: t.name,
      seconds: t.completeAt,
      downloaded: t.stopped?.downloaded ?? 0,
      uploaded: t.stopped?.uploaded ?? 0,
      identical: t.completeAt !== undefined && identical(files.data, NPath.join(runDir, `t${i}`, "data.bin"))
    }))
    const done = rows.map((r) => r.seconds).filter((s): s is number => s !== undefined)
    return {
      client,
      targets: rows,
      seederSent: seeder.stopped?.uploaded ?? 0,
      last: done.length === rows.length ? Math.max(...done) : undefined
    }
  } finally {
    await stopAll(peers)
    NFS.rmSync(runDir, { recursive: true, force: true })
  }
}

const mib = (n: number) => (n / 1024 / 1024).toFixed(1)

const report = (r: Result, size: number, ideal: number) => {
  console.log(`\n  ${r.client}: per target (seconds from launch, MiB downloaded / uploaded, copy identical)`)
  for (const t of r.targets)
    console.log(
      `    ${t.name.padEnd(10)} ${t.seconds === undefined ? "  not done" : `${t.seconds.toFixed(1).padStart(7)} s`}  down ${mib(t.downloaded).padStart(7)}  up ${mib(t.uploaded).padStart(7)}  ${t.identical ? "identical" : "NOT IDENTICAL"}`
    )
  const sent = r.seederSent + r.targets.reduce((a, t) => a + t.uploaded, 0)
  const kept = size * r.targets.length
  const summary = {
    last: r.last,
    efficiency: r.last === undefined ? undefined : ideal / r.last,
    seederSentPerSize: r.seederSent / size,
    sentPerKept: sent / kept
  }
  console.log(
    `    last done ${r.last === undefined ? "never (deadline)" : `${r.last.toFixed(1)} s`}, ideal ${ideal.toFixed(1)} s, efficiency ${summary.efficiency?.toFixed(2) ?? "-"}, seeder sent ${summary.seederSentPerSize.toFixed(2)} × size, sent by all / kept ${summary.sentPerKept.toFixed(3)}`
  )
  return summary
}

const main = async () => {
  const why = unavailable()
  if (why !== undefined) {
    console.log(`swarm bench skipped: ${why}`)
    return
  }
  const swarms = (process.env.EZIO_SWARM ?? "8@50,16@25").split(",").map((s) => {
    const [n, rate] = s.split("@")
    return { n: Number(n), mbit: Number(rate) }
  })
  const clients = (process.env.EZIO_SWARM_CLIENTS ?? "ezio,libtorrent").split(",")
  const hasLt = NFS.existsSync(PYTHON) && NFS.existsSync(OPENTRACKER)
  console.log(`swarm bench: ${swarms.map((s) => `1 seeder + ${s.n} targets at ${s.mbit} Mbit/s`).join("; ")}`)
  const goals: Array<string> = []
  for (const [k, { n, mbit }] of swarms.entries()) {
    const sizeMiB = Number(process.env.EZIO_SWARM_MIB ?? (k === 0 ? 128 : 64))
    const size = sizeMiB * 1024 * 1024
    const ideal = (size * 8) / (mbit * 1_000_000)
    const root = NFS.mkdtempSync(NPath.join(process.env.EZIO_BENCH_DIR ?? NOS.tmpdir(), "ezio-bench-swarm-"))
    NFS.chmodSync(root, 0o755)
    const lan = makeLan(n + 1, mbit)
    try {
      const source = await Effect.runPromise(
        makeSource(root, sizeMiB, { tracker: `http://${lan.hosts[0]!.ip}:6969/announce` })
      )
      const files = {
        data: source.data,
        ezioTorrent: source.torrent,
        ltTorrent: source.trackerTorrent!,
        root,
        infoHash: source.infoHash
      }
      console.log(
        `\n${n} targets at ${mbit} Mbit/s, ${sizeMiB} MiB in 1 MiB pieces (ideal ${ideal.toFixed(1)} s)`
      )
      const results: Record<string, ReturnType<typeof report>> = {}
      for (const client of clients) {
        if (client === "libtorrent" && !hasLt) {
          console.log("  libtorrent: skipped (needs python3-libtorrent and opentracker)")
          continue
        }
        const r = await runSwarm(client as "ezio" | "libtorrent", lan, files, Math.max(120, 8 * ideal))
        results[client] = report(r, size, ideal)
      }
      const e = results.ezio
      const l = results.libtorrent
      if (e !== undefined) {
        const speedup = e.last !== undefined && l?.last !== undefined ? l.last / e.last : undefined
        const line =
          `  goals (N=${n} @ ${mbit} Mbit/s): efficiency ${e.efficiency?.toFixed(2) ?? "-"} (≥ 0.85), seeder sent ${e.seederSentPerSize.toFixed(2)} × size (≤ 1.1), ` +
          `sent / kept ${e.sentPerKept.toFixed(3)} (≤ 1.02), libtorrent time / ezio time ${speedup?.toFixed(2) ?? "-"} (≥ 1.5)`
        console.log(line)
        goals.push(line)
      }
    } finally {
      lan.destroy()
      NFS.rmSync(root, { recursive: true, force: true })
    }
  }
  if (goals.length > 1) console.log(`\nsummary\n${goals.join("\n")}`)
}

await main()
