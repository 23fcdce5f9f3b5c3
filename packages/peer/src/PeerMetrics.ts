/**
 * The peer layer's Effect metrics, tagged `torrent` (the torrent's name). Each swarm copies its
 * plain counters into them once a second.
 *
 * @since 0.1.0
 */
import * as Metric from "effect/Metric"

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
