/**
 * @ezio/peer: the BitTorrent peer wire protocol, tracker clients and an embedded tracker.
 *
 * @since 0.1.0
 */

/** @since 0.1.0 */
export * as Wire from "./Wire.js"

/** @since 0.1.0 */
export * as Tracker from "./Tracker.js"

/** @since 0.1.0 */
export * as EmbeddedTracker from "./EmbeddedTracker.js"

/** @since 0.1.0 */
export * as Session from "./Session.js"

/** @since 0.1.0 */
export * as Deploy from "./Deploy.js"
export * as PeerMetrics from "./PeerMetrics.js"
