// A swarm's plain counters into `PeerMetrics`, tagged with the torrent's name: one Effect that
// the swarm's 1 s loop runs (and once more when the swarm stops), never anything per block.
import { MetricSync } from "@ezio/pool"
import type * as Effect from "effect/Effect"
import * as PeerMetrics from "../PeerMetrics.js"
import type { SwarmCore } from "./swarm.js"

interface Counts {
  readonly uploaded: number
  readonly downloaded: number
  readonly redundant: number
  readonly hashFailures: number
  readonly banned: number
  readonly peers: number
  readonly have: number
  readonly pieces: number
}

const countsOf = (core: SwarmCore): Counts => {
  let peers = 0
  for (const c of core.connections) if (c.handshaken) peers++
  return {
    uploaded: core.uploadedBytes,
    downloaded: core.downloadedBytes,
    redundant: core.redundantBytes,
    hashFailures: core.hashFailures,
    banned: core.smartBan.banned.size,
    peers,
    have: core.picker.count,
    pieces: core.metainfo.pieceCount
  }
}

/** The copy for `core`; it remembers the totals it last saw, so make one per swarm. */
export const make = (core: SwarmCore): Effect.Effect<void> => {
  const tags = { torrent: core.metainfo.name }
  const counter = (metric: typeof PeerMetrics.uploadedBytes, read: (c: Counts) => number) =>
    MetricSync.counter(MetricSync.tagged(metric, tags), read)
  const gauge = (metric: typeof PeerMetrics.peers, read: (c: Counts) => number) =>
    MetricSync.gauge(MetricSync.tagged(metric, tags), read)
  return MetricSync.make(
    () => countsOf(core),
    [
      counter(PeerMetrics.uploadedBytes, (c) => c.uploaded),
      counter(PeerMetrics.downloadedBytes, (c) => c.downloaded),
      counter(PeerMetrics.redundantBytes, (c) => c.redundant),
      counter(PeerMetrics.hashFailures, (c) => c.hashFailures),
      counter(PeerMetrics.bannedPeers, (c) => c.banned),
      gauge(PeerMetrics.peers, (c) => c.peers),
      gauge(PeerMetrics.piecesHave, (c) => c.have),
      gauge(PeerMetrics.pieces, (c) => c.pieces)
    ]
  )
}
