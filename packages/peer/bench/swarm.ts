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
 * Every copy is checked byte-identical. Then where the time went: when the first block arrived,
 * ezio's start-up marks (EZIO_STARTUP_TRACE: when each process was ready, announced, connected,
 * had its first byte, and the CPU time it had used by then), when the seeder had sent one copy,
 * how much of its link the seeder used, the share of TCP segments retransmitted and the packets
 * the shapers dropped (on uploads, on downloads), and where the seconds from the first block to
 * the last target done went (`emission`: the seeder's emission against its link's capacity,
 * pieces sent twice, retransmissions, the tail after its last unique piece, the targets' lag),
 * and CPU per GiB: each target's CPU seconds over the payload it moved, the seeder's over what it
 * sent, and all processes together (on a machine with few cores every host shares them).
 * Needs root and iproute2; skips with a reason otherwise.
 *
 * Run `pnpm build:sea` first so the targets run dist/ezio (else they compile the sources at start).
 *
 *   pnpm bench:swarm        EZIO_SWARM="8@50,16@25" (targets@Mbit/s, one swarm each),
 *                           EZIO_SWARM_MIB (default 128 for the first, 64 after),
 *                           EZIO_SWARM_PIECE_KIB (the torrent's piece size, default 1024),
 *                           EZIO_SWARM_CLIENTS="ezio,libtorrent",
 *                           EZIO_SWARM_TRACE=1 (a row every 2 s: link rates, pieces, drops),
 *                           EZIO_BENCH_DIR (where the copies go; /dev/shm keeps the disk out),
 *                           EZIO_SWARM_BIN (an ezio build other than dist/ezio),
 *                           EZIO_SWARM_SEED_ARGS / EZIO_SWARM_TARGET_ARGS (extra ezio flags),
 *                           EZIO_SWARM_DUMP (a file prefix: every sample of a run as JSON),
 *                           EZIO_SWARM_CC (the hosts' TCP congestion control, default the
 *                           machine's; one its tcp_allowed_congestion_control lists, e.g. reno)
 */
import * as NChild from "node:child_process"
import * as NFS from "node:fs"
import * as NOS from "node:os"
import * as NPath from "node:path"
import * as NReadline from "node:readline"
import { Effect } from "effect"
import { type Host, type Lan, makeLan, type TcpCounts, unavailable, type WireCounts } from "./netns.js"
import { cpuSplit, identical, makeSource, mean, median } from "./support.js"

const here = import.meta.dirname
const LT_PEER = NPath.join(here, "lt_swarm_peer.py")
const OPENTRACKER = "/usr/bin/opentracker"
const PYTHON = "/usr/bin/python3"

/**
 * The ezio command: `dist/ezio` (pnpm build:sea) when there is one, as a live-booted target runs
 * it (start-up counts: every target starts at once), else the sources through tsx; EZIO_SWARM_BIN
 * names another build (to compare two).
 */
const ezioCommand = (): Array<string> => {
  const sea = process.env.EZIO_SWARM_BIN ?? NPath.resolve(here, "../../../dist/ezio")
  if (NFS.existsSync(sea)) return [sea]
  return [process.execPath, NPath.resolve(here, "../../cli/bin/ezio.mjs")]
}

/** Extra command-line flags from an environment variable (split on spaces), to compare settings. */
const extraArgs = (name: string): Array<string> =>
  (process.env[name] ?? "").split(" ").filter((a) => a !== "")

/** One `--json` status line: seconds from launch, payload bytes so far, pieces had. */
interface Sample {
  readonly t: number
  readonly uploaded: number
  readonly downloaded: number
  readonly have: number
  readonly peers: number
  /** An ezio seeder's pieces that have left it whole at least once (its initial seeding). */
  readonly out?: number
}

/** An ezio seeder's initial seeding, as its status lines tell it. */
interface FirstSendsStatus {
  readonly piecesOut?: number
  readonly uploadedBeforeAllOut?: number
  readonly repeatedBeforeAllOut?: number
  readonly refused?: number
}

interface Peer {
  readonly name: string
  readonly samples: Array<Sample>
  readonly host: Host
  readonly child: NChild.ChildProcess
  completeAt: number | undefined
  stopped: { readonly uploaded: number; readonly downloaded: number } | undefined
  exited: Promise<number | null>
  stderr: string
  /** EZIO_STARTUP_TRACE marks: name → [seconds from launch, CPU ms the process had used]. */
  readonly marks: Map<string, readonly [number, number]>
  /** The last status line (with EZIO_SWARM_DUMP). */
  lastStatus?: unknown
  /** CPU seconds the process had used (all its threads), read about once a second while it ran. */
  cpu: Cpu
  /** An ezio seeder's initial seeding (its last status line), if any. */
  firstSends?: FirstSendsStatus
}

/** CPU seconds in user mode and in the kernel (which runs much of the network stack for the sender). */
type Cpu = NonNullable<ReturnType<typeof cpuSplit>>

/** Reads each process's CPU time while it runs (`ip netns exec` execs the command: same PID). */
const sampleCpu = (peers: ReadonlyArray<Peer>) => {
  for (const p of peers) {
    if (p.child.exitCode !== null || p.child.pid === undefined) continue
    const cpu = cpuSplit(p.child.pid)
    if (cpu !== undefined) p.cpu = cpu
  }
}

const withoutExtraCaCerts = (env: NodeJS.ProcessEnv): NodeJS.ProcessEnv => {
  const { NODE_EXTRA_CA_CERTS: _ignored, ...rest } = env
  return rest
}

/**
 * What a run has started and made, for SIGINT and SIGTERM (Ctrl-C, `timeout`): its processes are
 * killed by PID and its files removed; netns.ts then removes the namespaces and raises it again.
 * Without this an interrupted run left its targets running (in namespaces already gone) and up to
 * a GiB in the bench directory.
 */
const started = new Set<NChild.ChildProcess>()
const madeDirs = new Set<string>()
const onSignal = (signal: NodeJS.Signals) => {
  for (const child of started) if (child.exitCode === null && child.pid !== undefined) child.kill("SIGKILL")
  // The killed may still be writing: retry, and never throw (netns.ts's handler runs next).
  for (const dir of madeDirs)
    try {
      NFS.rmSync(dir, { recursive: true, force: true, maxRetries: 5, retryDelay: 50 })
    } catch (error) {
      console.error(`swarm bench: could not remove ${dir}: ${String(error)}`)
    }
  process.off("SIGINT", onSignal)
  process.off("SIGTERM", onSignal)
  // Alone (no LAN made yet), end as the signal would have; else netns.ts does, after its cleanup.
  if (process.listenerCount(signal) === 0) process.kill(process.pid, signal)
}
process.on("SIGINT", onSignal)
process.on("SIGTERM", onSignal)

const spawnPeer = (lan: Lan, name: string, host: Host, argv: ReadonlyArray<string>, launch: number): Peer => {
  const [command, args] = lan.exec(host, argv[0]!, argv.slice(1))
  const child = NChild.spawn(command, args, {
    stdio: ["ignore", "pipe", "pipe"],
    // With NODE_EXTRA_CA_CERTS Node 20 parses every root certificate at start, a large part of a
    // process's start-up CPU before any of ezio runs; a target booted for a deploy has no such
    // setting, and ezio's peers and trackers here use no TLS.
    env: { ...withoutExtraCaCerts(process.env), EZIO_STARTUP_TRACE: "1" }
  })
  started.add(child)
  child.once("exit", () => started.delete(child))
  const peer: Peer = {
    cpu: { user: 0, sys: 0 },
    marks: new Map(),
    name,
    samples: [],
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
  NReadline.createInterface({ input: child.stderr! }).on("line", (line) => {
    const m = /^ezio: startup (\S+) (\S+) (\S+)/.exec(line)
    if (m !== null) peer.marks.set(m[1]!, [(Number(m[2]) - launch) / 1000, Number(m[3])])
  })
  NReadline.createInterface({ input: child.stdout! }).on("line", (line) => {
    let event: { event?: string; uploaded?: number; downloaded?: number; have?: number; peers?: number }
    try {
      event = JSON.parse(line)
    } catch {
      return
    }
    if (event.event === "status" && process.env.EZIO_SWARM_DUMP !== undefined) peer.lastStatus = event
    const firstSends = (event as { torrents?: Array<{ initialSeeding?: FirstSendsStatus }> }).torrents?.[0]
      ?.initialSeeding
    if (firstSends !== undefined) peer.firstSends = firstSends
    if (event.event === "status")
      peer.samples.push({
        t: (Date.now() - launch) / 1000,
        uploaded: event.uploaded ?? 0,
        downloaded: event.downloaded ?? 0,
        have: event.have ?? 0,
        peers: event.peers ?? 0,
        ...(firstSends?.piecesOut === undefined ? {} : { out: firstSends.piecesOut })
      })
    if (event.event === "complete" && peer.completeAt === undefined)
      peer.completeAt = (Date.now() - launch) / 1000
    if (event.event === "stopped")
      peer.stopped = { uploaded: event.uploaded ?? 0, downloaded: event.downloaded ?? 0 }
  })
  return peer
}

const tcpDelta = (before: TcpCounts, after: TcpCounts): TcpCounts => ({
  outSegs: after.outSegs - before.outSegs,
  retransSegs: after.retransSegs - before.retransSegs,
  timeouts: after.timeouts - before.timeouts
})

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
  /** Block requests the ezio seeder refused (another target had the piece, or was getting it). */
  readonly seederRefused: number | undefined
  /** The ezio seeder's initial seeding at the end: payload it sent until every piece was out, repeats in it. */
  readonly seederFirstSends: FirstSendsStatus | undefined
  readonly last: number | undefined
  /** Why the run ended before every target was done: a process that exited early, or the deadline. */
  readonly cutShort: string | undefined
  /** Status samples (ezio only; libtorrent's peer prints none): the seeder's, each target's. */
  readonly seederSamples: ReadonlyArray<Sample>
  /** The seeder's last status line (with EZIO_SWARM_DUMP). */
  readonly seederStatus?: unknown
  readonly targetStatus?: ReadonlyArray<unknown>
  readonly targetSamples: ReadonlyArray<ReadonlyArray<Sample>>
  /** EZIO_STARTUP_TRACE marks (ezio only): the seeder's, each target's. */
  readonly seederMarks: ReadonlyMap<string, readonly [number, number]>
  readonly targetMarks: ReadonlyArray<ReadonlyMap<string, readonly [number, number]>>
  /** What the shapers counted, about once a second (host 0 is the seeder). */
  readonly wire: ReadonlyArray<WireCounts & { readonly t: number }>
  /** Packets the shapers dropped at the end of the run: on hosts' uploads, on their downloads. */
  readonly dropsEnd: { readonly up: number; readonly down: number }
  /** TCP counters this run added, all hosts together. */
  readonly tcp: TcpCounts
  /** TCP counters this run added on the seeder's host: its retransmissions take its link. */
  readonly seederTcp: TcpCounts
  /** CPU time each process used until the last target was done (or the deadline). */
  readonly seederCpu: Cpu
  readonly targetCpu: ReadonlyArray<Cpu>
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
  const wire: Array<WireCounts & { readonly t: number }> = []
  const tcpBefore = lan.tcp()
  const seederTcpBefore = lan.tcp(0)
  const allHosts = lan.hosts.map((_, i) => i)
  const wireStart = await lan.wire(allHosts)
  const launch = Date.now()
  let sampling = false
  const wireTimer = setInterval(() => {
    sampleCpu(peers)
    if (sampling) return
    sampling = true
    void lan.wire([0]).then((w) => {
      sampling = false
      wire.push({ ...w, t: (Date.now() - launch) / 1000 })
    })
  }, 1000)
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
            "--json",
            ...extraArgs("EZIO_SWARM_SEED_ARGS")
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
              "--json",
              ...extraArgs("EZIO_SWARM_TARGET_ARGS")
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
    let cutShort: string | undefined
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
        cutShort = `${died.name} exited early (${died.child.exitCode})`
        break
      }
      await new Promise((r) => setTimeout(r, 100))
    }
    if (cutShort === undefined && targets.some((t) => t.completeAt === undefined))
      cutShort = `deadline, ${deadlineSeconds} s`
    clearInterval(wireTimer)
    sampleCpu(peers)
    const tcpAfter = lan.tcp()
    const seederTcpAfter = lan.tcp(0)
    const wireEnd = await lan.wire(allHosts)
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
      seederRefused: seeder.firstSends?.refused,
      seederFirstSends: seeder.firstSends,
      seederSamples: seeder.samples,
      seederStatus: seeder.lastStatus,
      targetStatus: targets.map((t) => t.lastStatus),
      targetSamples: targets.map((t) => t.samples),
      seederMarks: seeder.marks,
      targetMarks: targets.map((t) => t.marks),
      wire,
      dropsEnd: {
        up: wireEnd.upDrops - wireStart.upDrops,
        down: wireEnd.drops - wireEnd.upDrops - (wireStart.drops - wireStart.upDrops)
      },
      tcp: tcpDelta(tcpBefore, tcpAfter),
      seederTcp: tcpDelta(seederTcpBefore, seederTcpAfter),
      seederCpu: seeder.cpu,
      targetCpu: targets.map((t) => t.cpu),
      last: done.length === rows.length ? Math.max(...done) : undefined,
      cutShort
    }
  } finally {
    clearInterval(wireTimer)
    await stopAll(peers)
    NFS.rmSync(runDir, { recursive: true, force: true })
  }
}

const mib = (n: number) => (n / 1024 / 1024).toFixed(1)

/** The last sample at or before `t` (the first one before it). */
const at = <S extends { readonly t: number }>(samples: ReadonlyArray<S>, t: number, none: S): S => {
  let last = none
  for (const s of samples) {
    if (s.t > t) break
    last = s
  }
  return last
}

const NO_SAMPLE: Sample = { t: 0, uploaded: 0, downloaded: 0, have: 0, peers: 0 }
const NO_WIRE: WireCounts & { readonly t: number } = {
  t: 0,
  up: new Map(),
  down: [],
  drops: 0,
  upDrops: 0
}

/**
 * When the first block reached a target, seconds from launch: the earliest of ezio's own
 * "first-byte" marks; for other clients, where a target's download link first carried 1 MiB,
 * between two of the once-a-second wire samples (the sample itself was up to a second late, and
 * so were the emission's and start-up's shares of the run with it).
 */
const firstBlockAt = (r: Result): number => {
  const marks = r.targetMarks.flatMap((m) => m.get("first-byte")?.[0] ?? [])
  if (marks.length > 0) return Math.min(...marks)
  const crossings = r.targetSamples.map(
    (_, i) =>
      reaches(
        r.wire.map((w) => [w.t, w.down[i + 1] ?? 0] as const),
        1024 * 1024
      ) ?? Infinity
  )
  const crossing = Math.min(...crossings)
  if (Number.isFinite(crossing)) return crossing
  return Math.min(
    ...r.targetSamples.map((s) => s.find((x) => x.downloaded > 0)?.t ?? Infinity),
    r.last ?? Infinity
  )
}

/**
 * Where the time goes: when the first block arrived (start-up), when the seeder had sent one
 * copy, and how much of its link (as its shaper counts, headers included) the seeder used from
 * the first block to the last target done: every piece leaves the seeder at least once, so its
 * link bounds the deploy. With EZIO_SWARM_TRACE=1, a row every 2 s: the seeder's link and the
 * targets' download links (mean / min) in MiB/s on the wire, the seeder's payload rate (ezio's
 * status), pieces the targets have (min / mean), packets the shapers dropped (on downloads and on the
 * seeder's upload).
 */
const timeline = (r: Result, size: number, linkBytesPerSecond: number) => {
  if (r.last === undefined || r.wire.length === 0) return
  const targetDown = (w: WireCounts) => w.down.slice(1)
  const first = firstBlockAt(r)
  const oneCopy = r.seederSamples.find((s) => s.uploaded >= size)?.t
  const seederWire = (t: number) => at(r.wire, t, NO_WIRE).up.get(0) ?? 0
  const used = (seederWire(r.last) - seederWire(first)) / (linkBytesPerSecond * (r.last - first))
  console.log(
    `    first block ${first.toFixed(1)} s, seeder sent one copy at ${oneCopy?.toFixed(1) ?? "-"} s, ` +
      `seeder link used ${(used * 100).toFixed(0)}% from first block to last done, ` +
      (r.seederRefused === undefined ? "" : `seeder refused ${r.seederRefused} block requests, `) +
      `TCP segments retransmitted ${((r.tcp.retransSegs / Math.max(1, r.tcp.outSegs)) * 100).toFixed(1)}% (${r.tcp.timeouts} time-outs), ` +
      `packets dropped (whole run, all links) ${r.dropsEnd.up} on uploads, ${r.dropsEnd.down} on downloads`
  )
  // Start-up: a process is up at its first status line (one a second), connected at its first with a peer.
  const up = (s: ReadonlyArray<Sample>) => s[0]?.t ?? Infinity
  const connected = (s: ReadonlyArray<Sample>) => s.find((x) => x.peers > 0)?.t ?? Infinity
  const slowest = (f: (s: ReadonlyArray<Sample>) => number) => Math.max(...r.targetSamples.map(f)).toFixed(1)
  console.log(
    `    start-up: seeder up ${up(r.seederSamples).toFixed(1)} s, targets up by ${slowest(up)} s, ` +
      `all connected by ${slowest(connected)} s`
  )
  emission(r, size, linkBytesPerSecond, first)
  startupMarks(r)
  if (process.env.EZIO_SWARM_TRACE !== "1") return
  console.log(
    "      t s   seeder wire   pieces out   targets down mean / min   up mean   pieces min / mean   drops"
  )
  const step = 2
  for (let t = step; t <= r.last + step; t += step) {
    const w1 = at(r.wire, t, NO_WIRE)
    const w0 = at(r.wire, t - step, NO_WIRE)
    const dt = Math.max(0.001, w1.t - w0.t)
    const seeder = ((w1.up.get(0) ?? 0) - (w0.up.get(0) ?? 0)) / dt
    // Pieces handed whole to its sockets (its own count; kernel and Node buffers run ahead of the wire).
    const out = String(at(r.seederSamples, t, NO_SAMPLE).out ?? "-")
    const down = targetDown(w1).map((d, i) => (d - (targetDown(w0)[i] ?? 0)) / dt)
    const have = r.targetSamples.map((s) => at(s, t, NO_SAMPLE).have)
    const up = r.targetSamples.map((_, i) => ((w1.up.get(i + 1) ?? 0) - (w0.up.get(i + 1) ?? 0)) / dt)
    console.log(
      `    ${t.toFixed(0).padStart(5)}   ${mib(seeder).padStart(11)}   ${out.padStart(10)}   ${mib(mean(down)).padStart(13)} / ${mib(down.length === 0 ? 0 : Math.min(...down)).padStart(5)}   ${mib(mean(up)).padStart(7)}   ${String(have.length === 0 ? 0 : Math.min(...have)).padStart(9)} / ${mean(have).toFixed(0).padStart(4)}   ${String(w1.drops - w0.drops).padStart(5)}`
    )
  }
}

/**
 * Wire bytes (as tc counts them: with the Ethernet header) per payload byte in full 1500-byte
 * packets (TCP/IP headers with timestamps leave 1448), with a piece message's 13 bytes per block.
 */
const WIRE_PER_PAYLOAD = (1514 / 1448) * ((16384 + 13) / 16384)

/** The time `samples` (ascending) first reach `value`, linearly between two samples; undefined if never. */
const reaches = (samples: ReadonlyArray<readonly [number, number]>, value: number): number | undefined => {
  for (let i = 0; i < samples.length; i++) {
    const [t, v] = samples[i]!
    if (v < value) continue
    if (i === 0) return t
    const [t0, v0] = samples[i - 1]!
    return t0 + ((t - t0) * (value - v0)) / Math.max(1, v - v0)
  }
  return undefined
}

/**
 * Where the seconds from the first block to the last target done went (an ezio seeder, whose
 * status tells what it sent until every piece was out): every piece must leave the seeder once,
 * so its link bounds the deploy. Emission (first block to the seeder's last unique byte on the
 * wire, its wire count reaching what it had sent by then) splits into the unique payload at the
 * link's capacity in full packets, pieces sent twice, the rest of its wire bytes (TCP's
 * retransmissions, at the run's wire bytes per payload byte), and what is left (its link not
 * full). Then the tail
 * (last unique byte to last done), the pieces the targets lacked at its start, and the lag: the
 * pieces out of the seeder (queued whole to a socket, its status's `piecesOut`) that the mean
 * target did not have yet, over the emission (pieces queued, in flight and waiting to be passed on).
 */
const emission = (r: Result, size: number, link: number, first: number) => {
  const before = r.seederFirstSends?.uploadedBeforeAllOut
  if (before === undefined || r.last === undefined || r.seederSent === 0) return
  const base = r.wire[0]?.up.get(0) ?? 0
  const seederWire = r.wire.map((w) => [w.t, (w.up.get(0) ?? 0) - base] as const)
  const wireTotal = seederWire[seederWire.length - 1]![1]
  const allOut = reaches(seederWire, (before * wireTotal) / r.seederSent)
  if (allOut === undefined) return
  const pieces = r.seederSamples[r.seederSamples.length - 1]?.have ?? 0
  const pieceBytes = size / Math.max(1, pieces)
  const seconds = (payload: number) => (payload * WIRE_PER_PAYLOAD) / link
  const unique = seconds(size)
  const repeats = seconds(r.seederFirstSends?.repeatedBeforeAllOut ?? 0)
  // The rest of the seeder's wire bytes, at the run's wire bytes per payload byte: TCP's retransmissions.
  const overhead = (before * (wireTotal / r.seederSent - WIRE_PER_PAYLOAD)) / link
  const span = allOut - first
  const haveAt = (t: number) => r.targetSamples.map((s) => at(s, t, NO_SAMPLE).have)
  const missing = haveAt(allOut).map((h) => pieces - h)
  const lags: Array<number> = []
  for (const s of r.seederSamples)
    if (s.out !== undefined && s.t >= first + 1 && s.t <= allOut) {
      const have = haveAt(s.t)
      lags.push(s.out - mean(have))
    }
  const lag = mean(lags)
  const f = (x: number) => x.toFixed(1)
  console.log(
    `    first block to last done ${f(r.last - first)} s: emission ${f(span)} s (unique payload at the link's capacity ${f(unique)} s, ` +
      `pieces sent twice ${f(repeats)} s, retransmissions and other wire bytes ${f(overhead)} s (${((r.seederTcp.retransSegs / Math.max(1, r.seederTcp.outSegs)) * 100).toFixed(1)}% of its segments), link not full ${f(span - unique - repeats - overhead)} s), ` +
      `tail after the last unique piece ${f(r.last - allOut)} s (targets lacked mean ${f(mean(missing))} / max ${Math.max(0, ...missing)} pieces then; ` +
      `the seeder sent ${mib(r.seederSent - before)} MiB more); lag behind the seeder's emission mean ${f(lag)} pieces (${f(seconds(lag * pieceBytes))} s of its link)`
  )
}

/** The order of `ezio`'s start-up marks (packages/cli/src/internal/startupTrace.ts). */
const MARKS = [
  "main",
  "compiled",
  "evaluated",
  "command",
  "engine",
  "opened",
  "session",
  "tracker-up",
  "ready",
  "announce-failed",
  "announced",
  "connected",
  "first-byte"
]

/**
 * Where start-up went (ezio only): when each mark came, seconds from launch (targets' median and
 * latest, the seeder's), and the CPU time a process had used by then (targets' median): with
 * every process starting at once on few cores, CPU time is what start-up costs. With
 * EZIO_SWARM_TRACE=1 every mark; else a line of the main ones.
 */
const startupMarks = (r: Result) => {
  if (r.targetMarks.every((m) => m.size === 0)) return
  const of = (name: string) => {
    const ts = r.targetMarks.map((m) => m.get(name)).filter((x) => x !== undefined)
    return {
      n: ts.length,
      median: median(ts.map((x) => x[0])),
      max: Math.max(...ts.map((x) => x[0])),
      cpu: median(ts.map((x) => x[1])),
      seeder: r.seederMarks.get(name)
    }
  }
  const first = of("first-byte")
  const ready = of("ready")
  const announced = of("announced")
  console.log(
    `    start-up marks (targets, median / latest s from launch): ready ${ready.median.toFixed(2)} / ${ready.max.toFixed(2)}, ` +
      `seeder's tracker up ${r.seederMarks.get("tracker-up")?.[0].toFixed(2) ?? "-"}, announced ${announced.median.toFixed(2)} / ${announced.max.toFixed(2)} ` +
      `(${of("announce-failed").n} of ${r.targetMarks.length} failed first), first byte ${first.median.toFixed(2)} / ${first.max.toFixed(2)}; ` +
      `CPU to ready ${ready.cpu.toFixed(0)} ms, to first byte ${first.cpu.toFixed(0)} ms (median)`
  )
  if (process.env.EZIO_SWARM_TRACE !== "1") return
  console.log("      mark               targets median / latest s   CPU ms   seeder s / CPU ms")
  for (const name of MARKS) {
    const m = of(name)
    if (m.n === 0 && m.seeder === undefined) continue
    console.log(
      `      ${name.padEnd(18)} ${m.n === 0 ? "-".padStart(14) : `${m.median.toFixed(2).padStart(6)} / ${m.max.toFixed(2).padStart(5)}`}   ${m.n === 0 ? "     -" : m.cpu.toFixed(0).padStart(6)}   ${m.seeder === undefined ? "-" : `${m.seeder[0].toFixed(2)} / ${m.seeder[1].toFixed(0)}`}`
    )
  }
}

const report = (r: Result, size: number, ideal: number, linkBytesPerSecond: number) => {
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
  const cpu = cpuLine(r)
  timeline(r, size, linkBytesPerSecond)
  // EZIO_SWARM_DUMP=file: every status sample and shaper count of the run, to look at per target.
  const dump = process.env.EZIO_SWARM_DUMP
  if (dump !== undefined)
    NFS.writeFileSync(
      `${dump}.${r.client}.json`,
      JSON.stringify({
        ...r,
        wire: r.wire.map((w) => ({ ...w, up: [...w.up] })),
        seederMarks: undefined,
        targetMarks: undefined
      })
    )
  console.log(
    `    last done ${r.last === undefined ? `never (${r.cutShort ?? "deadline"})` : `${r.last.toFixed(1)} s`}, ideal ${ideal.toFixed(1)} s, efficiency ${summary.efficiency?.toFixed(2) ?? "-"}, seeder sent ${summary.seederSentPerSize.toFixed(2)} × size, sent by all / kept ${summary.sentPerKept.toFixed(3)}`
  )
  return { ...summary, targetCpuPerGiB: cpu }
}

const GIB = 1024 * 1024 * 1024

/**
 * CPU per GiB: each target's CPU seconds (user + kernel, all threads) over the payload it moved
 * (downloaded + uploaded), the seeder's over what it sent; and all processes together against the
 * run's time, since on a machine with few cores every host of the LAN shares them. A target that
 * exited on its own once done is counted until its last sample (at most a second short).
 * Returns the targets' median.
 */
const cpuLine = (r: Result): number | undefined => {
  const seconds = (c: Cpu) => c.user + c.sys
  const perGiB = (c: Cpu, bytes: number) => seconds(c) / (Math.max(1, bytes) / GIB)
  // A run cut short before every host moved payload has no CPU per GiB worth printing.
  if (r.seederSent === 0 || r.targets.some((t) => t.downloaded + t.uploaded === 0)) return undefined
  const per = r.targets.map((t, i) => perGiB(r.targetCpu[i]!, t.downloaded + t.uploaded))
  if (per.every((x) => x === 0)) return undefined
  const targets = r.targetCpu.reduce((a, c) => a + seconds(c), 0)
  const user = r.targetCpu.reduce((a, c) => a + c.user, 0)
  const total = targets + seconds(r.seederCpu)
  console.log(
    `    CPU: targets median ${median(per).toFixed(1)} CPU-s per GiB moved (down + up; ${Math.min(...per).toFixed(1)}–${Math.max(...per).toFixed(1)}, ` +
      `${((user / Math.max(1e-9, targets)) * 100).toFixed(0)}% of it user), seeder ${perGiB(r.seederCpu, r.seederSent).toFixed(1)} CPU-s per GiB sent; ` +
      `all processes ${total.toFixed(1)} CPU-s` +
      (r.last === undefined
        ? ""
        : `, ${(total / r.last).toFixed(2)} cores on average until the last was done`)
  )
  return median(per)
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
  // The hosts' TCP congestion control, if not the machine's (one its tcp_allowed_congestion_control lists).
  const congestion = process.env.EZIO_SWARM_CC
  let machineCc = "?"
  try {
    machineCc = NFS.readFileSync("/proc/sys/net/ipv4/tcp_congestion_control", "utf8").trim()
  } catch {
    // not Linux: makeLan says so
  }
  if (congestion !== undefined) {
    // A namespace may set only what the root namespace allows: say so before any LAN is made.
    const allowed = NFS.readFileSync("/proc/sys/net/ipv4/tcp_allowed_congestion_control", "utf8").trim()
    if (!allowed.split(" ").includes(congestion)) {
      console.log(
        `swarm bench: EZIO_SWARM_CC=${congestion} is not allowed here (allowed: ${allowed}); a namespace ` +
          `may only set what the root namespace allows: sysctl -w net.ipv4.tcp_allowed_congestion_control="${allowed} ${congestion}" ` +
          `(and back afterwards)`
      )
      process.exitCode = 2
      return
    }
  }
  console.log(
    `swarm bench: ${swarms.map((s) => `1 seeder + ${s.n} targets at ${s.mbit} Mbit/s`).join("; ")}, ` +
      `TCP congestion control ${congestion ?? machineCc}`
  )
  const goals: Array<string> = []
  // The issue's swarms use 1 MiB pieces; smaller ones shorten each piece's trip through the swarm.
  const pieceKiB = Number(process.env.EZIO_SWARM_PIECE_KIB ?? 1024)
  for (const [k, { n, mbit }] of swarms.entries()) {
    const sizeMiB = Number(process.env.EZIO_SWARM_MIB ?? (k === 0 ? 128 : 64))
    const size = sizeMiB * 1024 * 1024
    const ideal = (size * 8) / (mbit * 1_000_000)
    const root = NFS.mkdtempSync(NPath.join(process.env.EZIO_BENCH_DIR ?? NOS.tmpdir(), "ezio-bench-swarm-"))
    NFS.chmodSync(root, 0o755)
    madeDirs.add(root)
    let lan: Lan | undefined
    try {
      lan = makeLan(n + 1, mbit, congestion)
      const source = await Effect.runPromise(
        makeSource(root, sizeMiB, {
          tracker: `http://${lan.hosts[0]!.ip}:6969/announce`,
          pieceLength: pieceKiB * 1024
        })
      )
      const files = {
        data: source.data,
        ezioTorrent: source.torrent,
        ltTorrent: source.trackerTorrent!,
        root,
        infoHash: source.infoHash
      }
      console.log(
        `\n${n} targets at ${mbit} Mbit/s, ${sizeMiB} MiB in ${pieceKiB} KiB pieces (ideal ${ideal.toFixed(1)} s)`
      )
      const results: Record<string, ReturnType<typeof report>> = {}
      for (const client of clients) {
        if (client === "libtorrent" && !hasLt) {
          console.log("  libtorrent: skipped (needs python3-libtorrent and opentracker)")
          continue
        }
        const r = await runSwarm(client as "ezio" | "libtorrent", lan, files, Math.max(120, 8 * ideal))
        results[client] = report(r, size, ideal, (mbit * 1_000_000) / 8)
      }
      const e = results.ezio
      const l = results.libtorrent
      if (e !== undefined) {
        const speedup = e.last !== undefined && l?.last !== undefined ? l.last / e.last : undefined
        const line =
          `  goals (N=${n} @ ${mbit} Mbit/s): efficiency ${e.efficiency?.toFixed(2) ?? "-"} (≥ 0.85), seeder sent ${e.seederSentPerSize.toFixed(2)} × size (≤ 1.1), ` +
          `sent / kept ${e.sentPerKept.toFixed(3)} (≤ 1.02), libtorrent time / ezio time ${speedup?.toFixed(2) ?? "-"} (≥ 1.5)` +
          (e.targetCpuPerGiB !== undefined && l?.targetCpuPerGiB !== undefined
            ? `; targets' CPU per GiB ezio / libtorrent ${(e.targetCpuPerGiB / l.targetCpuPerGiB).toFixed(2)}`
            : "")
        console.log(line)
        goals.push(line)
      }
    } finally {
      // Also when the LAN could not be made (say, a congestion control the namespaces refuse).
      lan?.destroy()
      NFS.rmSync(root, { recursive: true, force: true })
      madeDirs.delete(root)
    }
  }
  if (goals.length > 1) console.log(`\nsummary\n${goals.join("\n")}`)
}

await main()
