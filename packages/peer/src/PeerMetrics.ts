/**
 * The peer layer's Effect metrics, tagged `torrent` (the torrent's name), plus any tags of the
 * fiber that added the swarm (`Effect.tagMetrics`). Each swarm copies its plain counters into
 * them once a second and when it stops, in one Effect, so they cost nothing per block. They are
 * the figures the CLI dashboard's `/metrics` shows, for apps that export Effect metrics.
 *
 * @since 0.1.0
 */
import * as Metric from "effect/Metric"

/**
 * Payload bytes sent to peers.
 *
 * @since 0.1.0
 * @category metrics
 */
export const uploadedBytes = Metric.counter("ezio_peer_uploaded_bytes_total", {
  description: "Payload bytes sent to peers",
  incremental: true
})

/**
 * Payload bytes received from peers (kept or not).
 *
 * @since 0.1.0
 * @category metrics
 */
export const downloadedBytes = Metric.counter("ezio_peer_downloaded_bytes_total", {
  description: "Payload bytes received from peers",
  incremental: true
})

/**
 * Payload bytes received that were not needed: end-game duplicates and blocks that arrived after
 * their cancel. Against the bytes kept, how much of the swarm's traffic was thrown away.
 *
 * @since 0.1.0
 * @category metrics
 */
export const redundantBytes = Metric.counter("ezio_peer_redundant_bytes_total", {
  description: "Payload bytes received but not needed (duplicates, blocks cancelled too late)",
  incremental: true
})

/**
 * Pieces that failed their hash check.
 *
 * @since 0.1.0
 * @category metrics
 */
export const hashFailures = Metric.counter("ezio_peer_hash_failures_total", {
  description: "Pieces that failed their hash check",
  incremental: true
})

/**
 * Peers banned for sending bad data.
 *
 * @since 0.1.0
 * @category metrics
 */
export const bannedPeers = Metric.counter("ezio_peer_banned_total", {
  description: "Peers banned for sending bad data",
  incremental: true
})

/**
 * Connected peers (past the handshake).
 *
 * @since 0.1.0
 * @category metrics
 */
export const peers = Metric.gauge("ezio_peer_peers", { description: "Connected peers" })

/**
 * Pieces verified on the target.
 *
 * @since 0.1.0
 * @category metrics
 */
export const piecesHave = Metric.gauge("ezio_peer_pieces_have", { description: "Verified pieces" })

/**
 * Pieces in the torrent.
 *
 * @since 0.1.0
 * @category metrics
 */
export const pieces = Metric.gauge("ezio_peer_pieces", { description: "Pieces in the torrent" })
