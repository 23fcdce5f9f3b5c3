// The deploy model: what the seeder knows of each target from its announces alone. Pure and
// immutable, so the tracker's callback, the dashboard and the tests all see the same rules.
//
// A target is one peer id; a disk is several torrents (one per partition), so a target holds one
// entry per torrent of the deploy, and is complete once every one of them has `left` 0.

export type TargetState = "downloading" | "seeding" | "done" | "gone"

/** One announce as the tracker received it (times in ms on the tracker's Clock). */
export interface Announce {
  readonly infoHash: string
  readonly peerId: string
  readonly ip: string
  readonly port: number
  readonly event: "started" | "completed" | "stopped" | "none"
  readonly left: number
  readonly uploaded: number
  readonly downloaded: number
  readonly name: string | undefined
  readonly at: number
}

export interface TorrentProgress {
  readonly left: number
  readonly uploaded: number
  readonly downloaded: number
}

export interface Target {
  readonly peerId: string
  readonly name: string | undefined
  readonly address: string
  readonly state: TargetState
  readonly torrents: ReadonlyMap<string, TorrentProgress>
  /** Bytes of the deploy this target has (over every torrent), and the deploy's size. */
  readonly have: number
  readonly size: number
  readonly uploaded: number
  readonly downloaded: number
  /** Bytes per second between its last two announces. */
  readonly uploadRate: number
  readonly downloadRate: number
  readonly firstSeen: number
  readonly lastSeen: number
  readonly completedAt: number | undefined
}

export interface Model {
  /** Torrent info-hashes (hex) and their sizes: what every target must have. */
  readonly sizes: ReadonlyMap<string, number>
  /** Peer ids (hex) that are not targets: the seeder's own. */
  readonly exclude: ReadonlySet<string>
  readonly targets: ReadonlyMap<string, Target>
}

export const empty = (sizes: ReadonlyMap<string, number>, exclude: ReadonlySet<string>): Model => ({
  sizes,
  exclude,
  targets: new Map()
})

const deploySize = (model: Model): number => {
  let size = 0
  for (const s of model.sizes.values()) size += s
  return size
}

const haveOf = (model: Model, torrents: ReadonlyMap<string, TorrentProgress>): number => {
  let have = 0
  for (const [hash, size] of model.sizes) {
    const t = torrents.get(hash)
    if (t !== undefined) have += Math.max(0, size - t.left)
  }
  return have
}

const isComplete = (model: Model, torrents: ReadonlyMap<string, TorrentProgress>): boolean => {
  for (const hash of model.sizes.keys()) {
    const t = torrents.get(hash)
    if (t === undefined || t.left > 0) return false
  }
  return true
}

const sum = (torrents: ReadonlyMap<string, TorrentProgress>, key: "uploaded" | "downloaded") => {
  let total = 0
  for (const t of torrents.values()) total += t[key]
  return total
}

/** The model after one announce; announces for other torrents or from excluded peers change nothing. */
export const apply = (model: Model, a: Announce): Model => {
  if (model.exclude.has(a.peerId) || !model.sizes.has(a.infoHash)) return model
  const previous = model.targets.get(a.peerId)
  // a target that comes back after being gone starts a new run
  const fresh = previous === undefined || (previous.state === "gone" && a.event !== "stopped")
  const torrents = new Map(fresh ? [] : previous.torrents)
  torrents.set(a.infoHash, { left: a.left, uploaded: a.uploaded, downloaded: a.downloaded })
  const complete = isComplete(model, torrents)
  const uploaded = sum(torrents, "uploaded")
  const downloaded = sum(torrents, "downloaded")
  const seconds = previous === undefined || fresh ? 0 : (a.at - previous.lastSeen) / 1000
  const stopped = a.event === "stopped"
  const target: Target = {
    peerId: a.peerId,
    name: a.name ?? previous?.name,
    address: `${a.ip.includes(":") ? `[${a.ip}]` : a.ip}:${a.port}`,
    state: stopped ? (complete ? "done" : "gone") : complete ? "seeding" : "downloading",
    torrents,
    have: haveOf(model, torrents),
    size: deploySize(model),
    uploaded,
    downloaded,
    uploadRate: seconds > 0 ? Math.max(0, (uploaded - previous!.uploaded) / seconds) : 0,
    downloadRate: seconds > 0 ? Math.max(0, (downloaded - previous!.downloaded) / seconds) : 0,
    firstSeen: fresh ? a.at : previous.firstSeen,
    lastSeen: a.at,
    completedAt: complete ? (fresh ? a.at : (previous.completedAt ?? a.at)) : undefined
  }
  const targets = new Map(model.targets)
  targets.set(a.peerId, target)
  return { ...model, targets }
}

/** Targets silent for longer than `ttl` ms are gone, or done if they had everything. */
export const expire = (model: Model, now: number, ttl: number): Model => {
  let targets: Map<string, Target> | undefined
  for (const [id, t] of model.targets) {
    if ((t.state === "downloading" || t.state === "seeding") && now - t.lastSeen > ttl) {
      targets ??= new Map(model.targets)
      targets.set(id, {
        ...t,
        state: t.state === "seeding" ? "done" : "gone",
        uploadRate: 0,
        downloadRate: 0
      })
    }
  }
  return targets === undefined ? model : { ...model, targets }
}

export interface Totals {
  readonly total: number
  readonly byState: Readonly<Record<TargetState, number>>
  readonly have: number
  readonly size: number
  readonly downloadRate: number
  readonly uploadRate: number
  /** Seconds until every target still downloading is complete at the current aggregate rate. */
  readonly eta: number | undefined
}

export const totals = (model: Model): Totals => {
  const byState = { downloading: 0, seeding: 0, done: 0, gone: 0 }
  let have = 0
  let size = 0
  let downloadRate = 0
  let uploadRate = 0
  let missing = 0
  for (const t of model.targets.values()) {
    byState[t.state]++
    have += t.have
    size += t.size
    downloadRate += t.downloadRate
    uploadRate += t.uploadRate
    if (t.state === "downloading") missing += t.size - t.have
  }
  return {
    total: model.targets.size,
    byState,
    have,
    size,
    downloadRate,
    uploadRate,
    eta: missing === 0 ? 0 : downloadRate > 0 ? missing / downloadRate : undefined
  }
}
