/** What the seed and download benchmarks share: a memory sampler and the source file + torrent. */
import * as NFS from "node:fs"
import * as NPath from "node:path"
import { Create, Hasher } from "@ezio/storage"
import { Metainfo } from "@ezio/torrent"
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

/**
 * Writes `root/src/data.bin` (`mib` MiB of patterned bytes), its torrent (1 MiB pieces) at
 * `root/data.torrent`, and warms the page cache.
 */
export const makeSource = (root: string, mib: number) =>
  Effect.gen(function* () {
    const dir = NPath.join(root, "src")
    NFS.mkdirSync(dir)
    const data = NPath.join(dir, "data.bin")
    const fd = NFS.openSync(data, "w")
    const chunk = Buffer.alloc(16 * 1024 * 1024)
    for (let i = 0; i < mib / 16; i++) {
      for (let j = 0; j < chunk.length; j += 4) chunk.writeUInt32LE((i * 2654435761 + j * 40503) >>> 0, j)
      NFS.writeSync(fd, chunk)
    }
    NFS.closeSync(fd)
    const meta = yield* Create.fromPath(data, { pieceLength: 1024 * 1024 }).pipe(
      Effect.provide(Hasher.layer())
    )
    const torrent = NPath.join(root, "data.torrent")
    NFS.writeFileSync(torrent, Metainfo.encode(meta))
    // Warm the page cache in chunks (readFileSync refuses files over 2 GiB).
    const warm = NFS.openSync(data, "r")
    for (let at = 0; NFS.readSync(warm, chunk, 0, chunk.length, at) > 0; at += chunk.length);
    NFS.closeSync(warm)
    return { dir, data, torrent }
  })
