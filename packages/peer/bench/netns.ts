/**
 * A LAN made of network namespaces, for the swarm benchmark: one namespace per host, each with an
 * `eth0` veth whose other end sits on a bridge in a switch namespace of its own. Nothing is created
 * in the root namespace, so no traffic can leave the hosts; every link is shaped with `tc tbf` on
 * both ends (upload on the host's end, download on the switch's end).
 *
 * Needs root and iproute2. `destroy()` removes every namespace (and with it every link) this run
 * made; it also runs on exit, SIGINT and SIGTERM.
 */
import * as NChild from "node:child_process"
import * as NFS from "node:fs"

export interface Host {
  readonly ns: string
  readonly ip: string
}

export interface Lan {
  readonly hosts: ReadonlyArray<Host>
  /** `ip netns exec NS cmd args...` as a spawn argument list. */
  readonly exec: (host: Host, command: string, args: ReadonlyArray<string>) => [string, Array<string>]
  /**
   * Bytes each link has carried so far as the shapers count them (frames with their headers, a
   * segmentation-offloaded packet as its segments): `up[i]` left host i, `down[i]` reached it;
   * `drops` are packets the shapers dropped. Only the hosts in `uploads` have their shaper read
   * (one `tc` call per host); the others' `up` is what their veth's far end received (one call on
   * the switch for all, an offloaded packet counted with one header: a little under the shaper's).
   */
  readonly wire: (uploads: ReadonlyArray<number>) => Promise<WireCounts>
  /** TCP segments sent, retransmitted, and retransmission time-outs, summed over every host or of one. */
  readonly tcp: (host?: number) => TcpCounts
  readonly destroy: () => void
}

export interface TcpCounts {
  readonly outSegs: number
  readonly retransSegs: number
  readonly timeouts: number
}

export interface WireCounts {
  readonly up: ReadonlyMap<number, number>
  readonly down: ReadonlyArray<number>
  readonly drops: number
  /** Of `drops`, those on the upload side of the hosts read. */
  readonly upDrops: number
}

const IP = "/usr/sbin/ip"
const TC = "/usr/sbin/tc"

/** Why the swarm benchmark can't run here, or undefined if it can. */
export const unavailable = (): string | undefined => {
  if (process.getuid?.() !== 0) return "needs root (network namespaces)"
  if (!NFS.existsSync(IP) || !NFS.existsSync(TC))
    return "needs iproute2 (ip, tc): apt-get install -y iproute2"
  try {
    NChild.execFileSync(IP, ["netns", "list"], { stdio: "ignore" })
  } catch {
    return "`ip netns` does not work here"
  }
  return undefined
}

interface TcQdisc {
  readonly dev?: string
  readonly bytes?: number
  readonly drops?: number
}

/** A command's JSON output, or `none` if it fails. */
const json = <A>(command: string, args: ReadonlyArray<string>, none: A): Promise<A> =>
  new Promise((resolve) =>
    NChild.execFile(command, args, { timeout: 5_000 }, (error, out) => {
      if (error !== null) return resolve(none)
      try {
        resolve(JSON.parse(out) as A)
      } catch {
        resolve(none)
      }
    })
  )

const qdiscs = (ns: string): Promise<Array<TcQdisc>> =>
  json(IP, ["netns", "exec", ns, TC, "-s", "-j", "qdisc", "show"], [])

interface IpLink {
  readonly ifname?: string
  readonly stats64?: { readonly rx?: { readonly bytes?: number } }
}

const links = (ns: string): Promise<Array<IpLink>> => json(IP, ["-n", ns, "-s", "-j", "link", "show"], [])

/** `Tcp:`/`TcpExt:` style tables (a header row, then a value row) as name → value. */
const snmpTable = (text: string, prefix: string): Map<string, number> => {
  const rows = text.split("\n").filter((l) => l.startsWith(`${prefix}:`))
  const out = new Map<string, number>()
  if (rows.length < 2) return out
  const names = rows[0]!.split(/\s+/).slice(1)
  const values = rows[1]!.split(/\s+/).slice(1)
  names.forEach((n, i) => out.set(n, Number(values[i])))
  return out
}

const run = (command: string, args: ReadonlyArray<string>) =>
  NChild.execFileSync(command, args, { stdio: ["ignore", "ignore", "pipe"], timeout: 10_000 })

/**
 * Deletes a namespace, again for a while if it is busy: a `tc` the wire sampling started inside it
 * may be running still (seen: the bridge's namespace left behind after a run).
 */
const removeNamespace = (ns: string) => {
  for (let attempt = 0; ; attempt++) {
    try {
      run(IP, ["netns", "del", ns])
      return
    } catch (error) {
      if (!NFS.existsSync(`/run/netns/${ns}`)) return
      if (attempt === 20) {
        console.error(`netns: could not remove ${ns} (remove it with ip netns del ${ns}): ${String(error)}`)
        return
      }
      Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, 100)
    }
  }
}

/**
 * `hosts` namespaces on one bridge, addresses 10.201.0.1.. (a range used only inside them), each
 * link shaped to `mbit` Mbit/s both ways (undefined: unshaped).
 */
export const makeLan = (hosts: number, mbit: number | undefined, congestion?: string): Lan => {
  const tag = `ezio${process.pid}`
  const sw = `${tag}-sw`
  const made: Array<string> = []
  let destroyed = false
  const destroy = () => {
    if (destroyed) return
    destroyed = true
    for (const ns of made.reverse()) removeNamespace(ns)
  }
  // Ctrl-C and `timeout` signal the whole process group, and tsx relays the signal again: the
  // second one must not end the process halfway through (a `once` listener is gone by then), so
  // the listener stays until the namespaces are removed, then the signal is raised again.
  const onSignal = (signal: NodeJS.Signals) => {
    destroy()
    process.off("SIGINT", onSignal)
    process.off("SIGTERM", onSignal)
    process.kill(process.pid, signal)
  }
  process.once("exit", destroy)
  process.on("SIGINT", onSignal)
  process.on("SIGTERM", onSignal)

  const shape = (ns: string, dev: string) => {
    if (mbit === undefined) return
    run(IP, [
      "netns",
      "exec",
      ns,
      TC,
      "qdisc",
      "add",
      "dev",
      dev,
      "root",
      "tbf",
      "rate",
      `${mbit}mbit`,
      "burst",
      "64kb",
      "latency",
      "20ms"
    ])
  }
  try {
    run(IP, ["netns", "add", sw])
    made.push(sw)
    run(IP, ["-n", sw, "link", "add", "br0", "type", "bridge"])
    run(IP, ["-n", sw, "link", "set", "br0", "up"])
    const list: Array<Host> = []
    for (let i = 0; i < hosts; i++) {
      const ns = `${tag}-h${i}`
      const ip = `10.201.${Math.floor((i + 1) / 250)}.${((i + 1) % 250) + 1}`
      run(IP, ["netns", "add", ns])
      made.push(ns)
      run(IP, ["link", "add", "eth0", "netns", ns, "type", "veth", "peer", "name", `v${i}`, "netns", sw])
      run(IP, ["-n", sw, "link", "set", `v${i}`, "master", "br0"])
      run(IP, ["-n", sw, "link", "set", `v${i}`, "up"])
      run(IP, ["-n", ns, "addr", "add", `${ip}/16`, "dev", "eth0"])
      run(IP, ["-n", ns, "link", "set", "eth0", "up"])
      run(IP, ["-n", ns, "link", "set", "lo", "up"])
      // Each namespace has its own TCP congestion control, copied from the root's unless set.
      if (congestion !== undefined)
        run(IP, ["netns", "exec", ns, "sysctl", "-qw", `net.ipv4.tcp_congestion_control=${congestion}`])
      shape(ns, "eth0")
      shape(sw, `v${i}`)
      list.push({ ns, ip })
    }
    return {
      hosts: list,
      exec: (host, command, args) => [IP, ["netns", "exec", host.ns, command, ...args]],
      wire: async (uploads) => {
        const [switchLinks, switchSide, ...hostSides] = await Promise.all([
          links(sw),
          qdiscs(sw),
          ...uploads.map((i) => qdiscs(list[i]!.ns))
        ])
        const down = list.map(() => 0)
        let drops = 0
        for (const q of switchSide!) {
          const i = /^v(\d+)$/.exec(q.dev ?? "")
          if (i !== null) down[Number(i[1])] = q.bytes ?? 0
          drops += q.drops ?? 0
        }
        const up = new Map<number, number>()
        for (const l of switchLinks) {
          const i = /^v(\d+)$/.exec(l.ifname ?? "")
          if (i !== null) up.set(Number(i[1]), l.stats64?.rx?.bytes ?? 0)
        }
        let upDrops = 0
        uploads.forEach((host, k) => {
          for (const q of hostSides[k]!)
            if (q.dev === "eth0") {
              up.set(host, q.bytes ?? 0)
              upDrops += q.drops ?? 0
            }
        })
        return { up, down, drops: drops + upDrops, upDrops }
      },
      tcp: (only) => {
        let outSegs = 0
        let retransSegs = 0
        let timeouts = 0
        for (const host of only === undefined ? list : [list[only]!]) {
          try {
            const text = NChild.execFileSync(
              IP,
              ["netns", "exec", host.ns, "cat", "/proc/net/snmp", "/proc/net/netstat"],
              { encoding: "utf8", timeout: 5_000 }
            )
            const tcp = snmpTable(text, "Tcp")
            outSegs += tcp.get("OutSegs") ?? 0
            retransSegs += tcp.get("RetransSegs") ?? 0
            timeouts += snmpTable(text, "TcpExt").get("TCPTimeouts") ?? 0
          } catch {
            // counted as nothing
          }
        }
        return { outSegs, retransSegs, timeouts }
      },
      destroy
    }
  } catch (error) {
    destroy()
    throw error
  }
}
