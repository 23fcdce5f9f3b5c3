// What `seed` and `download` print about their swarms (one per torrent/target pair): the ready
// line, the status line once a second and the summary when they stop. Counts are summed over the
// torrents; the JSON lines also list each torrent, by name and info-hash. Pure functions of the
// swarms' status and the one pool they share.
import type { Session } from "@ezio/peer"
import type { BufferPool } from "@ezio/pool"
import type { Metainfo } from "@ezio/torrent"
import { formatBytes, formatRate } from "./format.js"

/** One torrent being served: its target (as named on the command line) and its swarm. */
export interface Part {
  readonly data: string
  readonly swarm: Session.Swarm
}

const sum = (statuses: ReadonlyArray<Session.Status>, key: keyof Session.Status) => {
  let total = 0
  for (const s of statuses) total += s[key] as number
  return total
}

/**
 * The swarms as one: counts and rates summed, complete when every one is, the latest upload,
 * the first failure. With one swarm, its own status.
 */
export const total = (statuses: ReadonlyArray<Session.Status>): Session.Status => {
  if (statuses.length === 1) return statuses[0]!
  let lastUploadAt: number | undefined
  for (const s of statuses)
    if (s.lastUploadAt !== undefined && (lastUploadAt === undefined || s.lastUploadAt > lastUploadAt))
      lastUploadAt = s.lastUploadAt
  const failure = statuses.find((s) => s.failure !== undefined)?.failure
  return {
    peers: sum(statuses, "peers"),
    uploaded: sum(statuses, "uploaded"),
    downloaded: sum(statuses, "downloaded"),
    uploadRate: sum(statuses, "uploadRate"),
    downloadRate: sum(statuses, "downloadRate"),
    redundant: sum(statuses, "redundant"),
    have: sum(statuses, "have"),
    pieces: sum(statuses, "pieces"),
    complete: statuses.every((s) => s.complete),
    downloading: statuses.some((s) => s.downloading),
    hashFailures: sum(statuses, "hashFailures"),
    retracted: sum(statuses, "retracted"),
    banned: statuses.flatMap((s) => s.banned),
    errors: statuses.flatMap((s) => s.errors),
    seeds: sum(statuses, "seeds"),
    lastUploadAt,
    ...(failure === undefined ? {} : { failure }),
    missingAvailable: sum(statuses, "missingAvailable")
  }
}

/** Every swarm's status now, in the order of the pairs. */
export const statuses = (parts: ReadonlyArray<Part>): Array<Session.Status> =>
  parts.map((p) => p.swarm.unsafeStatus())

/** The torrents' names, for text lines. */
export const names = (metas: ReadonlyArray<Metainfo.Metainfo>): string => metas.map((m) => m.name).join(", ")

const torrentOf = (meta: Metainfo.Metainfo) => ({ name: meta.name, infoHash: meta.infoHashHex })

/** The `ready` line: with one torrent its name and info-hash, as always; `torrents` lists each. */
export const ready = (o: {
  readonly mode: "seed" | "download"
  readonly parts: ReadonlyArray<Part>
  readonly listen: string
  readonly tracker: string | undefined
}) => {
  const metas = o.parts.map((p) => p.swarm.metainfo)
  const now = statuses(o.parts)
  const all = total(now)
  const value = {
    event: "ready",
    mode: o.mode,
    ...(metas.length === 1 ? torrentOf(metas[0]!) : {}),
    listen: o.listen,
    have: all.have,
    pieces: all.pieces,
    ...(o.tracker !== undefined ? { tracker: o.tracker } : {}),
    torrents: o.parts.map((p, i) => ({
      ...torrentOf(metas[i]!),
      target: p.data,
      have: now[i]!.have,
      pieces: now[i]!.pieces
    }))
  }
  const what =
    metas.length === 1
      ? `${metas[0]!.name} (${metas[0]!.infoHashHex})`
      : `${metas.length} torrents: ${metas.map((m) => `${m.name} (${m.infoHashHex})`).join(", ")}`
  const text = `ready: ${o.mode === "seed" ? "seeding" : "downloading"} ${what} on ${o.listen}${o.tracker !== undefined ? `, tracker ${o.tracker}` : ""}`
  return { value, text }
}

const poolBytes = (p: BufferPool.Stats) => ({
  poolInUse: p.inUse * p.blockSize,
  poolPeak: p.peak * p.blockSize,
  poolCapacity: p.capacityBlocks * p.blockSize
})

/** The JSON `status` line: the totals, the one pool, and each torrent's own counts. */
export const statusJson = (
  parts: ReadonlyArray<Part>,
  now: ReadonlyArray<Session.Status>,
  pool: BufferPool.Stats
) => {
  const s = total(now)
  return {
    event: "status",
    peers: s.peers,
    uploadRate: s.uploadRate,
    uploaded: s.uploaded,
    downloadRate: s.downloadRate,
    downloaded: s.downloaded,
    redundant: s.redundant,
    have: s.have,
    pieces: s.pieces,
    ...poolBytes(pool),
    hashFailures: s.hashFailures,
    retracted: s.retracted,
    errors: s.errors.length,
    torrents: parts.map((p, i) => ({
      ...torrentOf(p.swarm.metainfo),
      peers: now[i]!.peers,
      uploaded: now[i]!.uploaded,
      downloaded: now[i]!.downloaded,
      have: now[i]!.have,
      pieces: now[i]!.pieces,
      complete: now[i]!.complete,
      // A seeder's initial seeding (what left it until every piece had, requests refused).
      ...(now[i]!.initialSeeding === undefined ? {} : { initialSeeding: now[i]!.initialSeeding })
    }))
  }
}

/** The text status line, over every torrent. */
export const statusText = (mode: "seed" | "download", s: Session.Status, pool: BufferPool.Stats): string =>
  `peers ${s.peers}  up ${formatRate(s.uploadRate)} (${formatBytes(s.uploaded)})` +
  (mode === "download" || s.downloaded > 0
    ? `  down ${formatRate(s.downloadRate)} (${formatBytes(s.downloaded)})  ${s.have}/${s.pieces} pieces`
    : "") +
  (s.redundant > 0 ? `  redundant ${formatBytes(s.redundant)}` : "") +
  `  pool ${formatBytes(pool.inUse * pool.blockSize)}/${formatBytes(pool.capacityBlocks * pool.blockSize)}`

/** The `stopped` summary: totals, the pool's peak and capacity, and each torrent's counts. */
export const stopped = (
  parts: ReadonlyArray<Part>,
  now: ReadonlyArray<Session.Status>,
  pool: BufferPool.Stats,
  seconds: number
) => {
  const s = total(now)
  const { poolCapacity, poolPeak } = poolBytes(pool)
  const value = {
    event: "stopped",
    seconds,
    uploaded: s.uploaded,
    downloaded: s.downloaded,
    redundant: s.redundant,
    have: s.have,
    pieces: s.pieces,
    poolPeak,
    poolCapacity,
    torrents: parts.map((p, i) => ({
      ...torrentOf(p.swarm.metainfo),
      target: p.data,
      uploaded: now[i]!.uploaded,
      downloaded: now[i]!.downloaded,
      have: now[i]!.have,
      pieces: now[i]!.pieces
    }))
  }
  const each =
    parts.length > 1
      ? ` (${parts.map((p, i) => `${p.data} ${now[i]!.have}/${now[i]!.pieces}`).join(", ")})`
      : ""
  const text = `stopped after ${seconds.toFixed(1)} s: uploaded ${formatBytes(s.uploaded)}, downloaded ${formatBytes(s.downloaded)}, ${s.have}/${s.pieces} pieces${each}, pool peak ${formatBytes(poolPeak)}`
  return { value, text }
}
