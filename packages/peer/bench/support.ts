/**
 * What the benchmark measures processes with (peak RssAnon, CPU seconds from /proc), the source
 * file + torrent, and a byte-for-byte comparison.
 */
import * as NChild from "node:child_process"
import * as NFS from "node:fs"
import * as NPath from "node:path"
import { Create, Hasher } from "@ezio/storage"
import { Bencode, Metainfo } from "@ezio/torrent"
import { Effect } from "effect"

const rssAnonKiB = (pid: number): number => {
  try {
    const m = /RssAnon:\s+(\d+)/.exec(NFS.readFileSync(`/proc/${pid}/status`, "utf8"))
    return m === null ? 0 : Number(m[1])
  } catch {
    return 0
  }
}

/** Samples a process's RssAnon until stopped; returns the peak in MiB. */
export const sampler = (pid: number) => {
  let peak = 0
  const timer = setInterval(() => (peak = Math.max(peak, rssAnonKiB(pid))), 50)
  timer.unref()
  return {
    stop: () => {
      clearInterval(timer)
      return peak / 1024
    }
  }
}

const clockTicks = (() => {
  const out = NChild.spawnSync("getconf", ["CLK_TCK"], { encoding: "utf8" })
  const n = Number(out.stdout?.trim())
  return Number.isFinite(n) && n > 0 ? n : 100
})()

/**
 * User + system CPU seconds a process has used so far, all its threads (utime + stime of
 * /proc/PID/stat); undefined once it is gone.
 */
export const cpuSeconds = (pid: number): number | undefined => {
  try {
    const stat = NFS.readFileSync(`/proc/${pid}/stat`, "utf8")
    const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ")
    return (Number(fields[11]) + Number(fields[12])) / clockTicks
  } catch {
    return undefined
  }
}

/** User and system CPU seconds so far, all threads; undefined once the process is gone. */
export const cpuSplit = (pid: number): { readonly user: number; readonly sys: number } | undefined => {
  try {
    const stat = NFS.readFileSync(`/proc/${pid}/stat`, "utf8")
    const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ")
    return { user: Number(fields[11]) / clockTicks, sys: Number(fields[12]) / clockTicks }
  } catch {
    return undefined
  }
}

/**
 * Writes `mib` MiB of fresh pages under `dir` and frees them, right before a round. On a VM that
 * hands freed guest memory back to its host (virtio-balloon free page reporting, as here), the
 * first touch of such a page costs whoever touches it ~2.9 s of system time per GiB against
 * ~0.35 when backed, and a download writes 1 GiB of new file pages: which rounds landed on handed-
 * back memory was most of the run-to-run spread. Pages freed a moment ago are not yet reported
 * and are the first the kernel hands out again, so both sides of the next round find backed ones.
 * Returns the system seconds it took (≫ 0.35 per GiB: memory had gone cold).
 */
export const warmMemory = (dir: string, mib: number): number => {
  if (mib <= 0) return 0
  const file = NPath.join(dir, `warm-${process.pid}`)
  const chunk = Buffer.alloc(4 * 1048576, 1)
  const before = process.cpuUsage()
  const fd = NFS.openSync(file, "w")
  try {
    for (let written = 0; written < mib * 1048576; written += chunk.length) NFS.writeSync(fd, chunk)
  } finally {
    NFS.closeSync(fd)
    NFS.rmSync(file, { force: true })
  }
  return process.cpuUsage(before).system / 1e6
}

/** Compares two files chunk by chunk. */
export const identical = (a: string, b: string): boolean => {
  if (NFS.statSync(a).size !== NFS.statSync(b).size) return false
  const fa = NFS.openSync(a, "r")
  const fb = NFS.openSync(b, "r")
  const ba = Buffer.alloc(8 * 1024 * 1024)
  const bb = Buffer.alloc(8 * 1024 * 1024)
  try {
    for (let at = 0; ;) {
      const n = NFS.readSync(fa, ba, 0, ba.length, at)
      const m = NFS.readSync(fb, bb, 0, bb.length, at)
      if (n !== m) return false
      if (n === 0) return true
      if (ba.subarray(0, n).compare(bb.subarray(0, n)) !== 0) return false
      at += n
    }
  } finally {
    NFS.closeSync(fa)
    NFS.closeSync(fb)
  }
}

/** Is something listening on 127.0.0.1:`port` (a LISTEN row in /proc/net/tcp)? */
export const listening = (port: number): boolean => {
  const hex = port.toString(16).toUpperCase().padStart(4, "0")
  try {
    return NFS.readFileSync("/proc/net/tcp", "utf8")
      .split("\n")
      .some((row) => {
        const cols = row.trim().split(/\s+/)
        return cols[1]?.endsWith(`:${hex}`) === true && cols[3] === "0A"
      })
  } catch {
    return false
  }
}

/**
 * Writes `root/src/data.bin` (`mib` MiB of patterned bytes), its torrent (1 MiB pieces unless
 * `pieceLength` says otherwise) at
 * `root/data.torrent`, and warms the page cache. With `tracker`, also `root/tracker.torrent`:
 * the same info (same info-hash) announcing to that tracker.
 */
export const makeSource = (
  root: string,
  mib: number,
  options: { readonly tracker?: string; readonly pieceLength?: number } = {}
) =>
  Effect.gen(function* () {
    const dir = NPath.join(root, "src")
    NFS.mkdirSync(dir, { recursive: true })
    const data = NPath.join(dir, "data.bin")
    const fd = NFS.openSync(data, "w")
    const chunk = Buffer.alloc(16 * 1024 * 1024)
    for (let i = 0; i < mib / 16; i++) {
      for (let j = 0; j < chunk.length; j += 4) chunk.writeUInt32LE((i * 2654435761 + j * 40503) >>> 0, j)
      NFS.writeSync(fd, chunk)
    }
    NFS.closeSync(fd)
    const meta = yield* Create.fromPath(data, { pieceLength: options.pieceLength ?? 1024 * 1024 }).pipe(
      Effect.provide(Hasher.layer())
    )
    const torrent = NPath.join(root, "data.torrent")
    NFS.writeFileSync(torrent, Metainfo.encode(meta))
    // Warm the page cache in chunks (readFileSync refuses files over 2 GiB).
    const warm = NFS.openSync(data, "r")
    for (let at = 0; NFS.readSync(warm, chunk, 0, chunk.length, at) > 0; at += chunk.length);
    NFS.closeSync(warm)
    const trackerTorrent =
      options.tracker === undefined
        ? undefined
        : withAnnounce(meta.torrent, options.tracker, NPath.join(root, "tracker.torrent"))
    return { dir, data, torrent, trackerTorrent, infoHash: meta.infoHashHex }
  })

/** Writes `torrent` (a .torrent's dictionary) announcing to `tracker` to `file`; returns `file`. */
export const withAnnounce = (torrent: Bencode.Dict, tracker: string, file: string): string => {
  NFS.writeFileSync(file, Bencode.encode({ ...torrent, announce: Bencode.text(tracker) }))
  return file
}

/** `ezio seed` of `torrent` from `data` as the benches run it: 127.0.0.1, any port, JSON events. */
export const ezioSeedArgs = (torrent: string, data: string, poolSize: string): Array<string> => [
  "seed",
  torrent,
  data,
  "--bind",
  "127.0.0.1",
  "--port",
  "0",
  "--trust",
  "--json",
  "--pool-size",
  poolSize
]

/** The median of `xs` (NaN for none). */
/** The mean of `xs` (0 for none). */
export const mean = (xs: ReadonlyArray<number>): number =>
  xs.reduce((a, b) => a + b, 0) / Math.max(1, xs.length)

export const median = (xs: ReadonlyArray<number>): number => {
  if (xs.length === 0) return NaN
  const s = [...xs].sort((a, b) => a - b)
  const m = s.length >> 1
  return s.length % 2 === 1 ? s[m]! : (s[m - 1]! + s[m]!) / 2
}
