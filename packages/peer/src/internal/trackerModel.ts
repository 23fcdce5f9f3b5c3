/**
 * Tracker models and the tracker error, shared by the HTTP and UDP clients, the announcer and the
 * embedded tracker. Re-exported from `Tracker.ts`.
 */
import * as Data from "effect/Data"

/**
 * The announce event: `"none"` for the periodic announces between them.
 *
 * @since 0.1.0
 * @category models
 */
export type AnnounceEvent = "started" | "completed" | "stopped" | "none"

/**
 * One announce. Byte counts are totals since `started`; `left` is what we still need (0 for a seeder).
 *
 * @since 0.1.0
 * @category models
 */
export interface AnnounceRequest {
  /** 20 bytes. */
  readonly infoHash: Uint8Array
  /** 20 bytes. */
  readonly peerId: Uint8Array
  /** The port peers should connect to. */
  readonly port: number
  readonly uploaded: number
  readonly downloaded: number
  readonly left: number
  /** Default `"none"`. */
  readonly event?: AnnounceEvent
  /** Peers wanted; default: the tracker's default (HTTP) or -1 (UDP). */
  readonly numwant?: number
  /** A 32-bit number identifying this client across IP changes. */
  readonly key?: number
  /** An address to announce instead of the one the tracker sees (IPv4 only for UDP). */
  readonly ip?: string
  /** The `tracker id` an earlier response of this tracker gave (HTTP only). */
  readonly trackerId?: string
}

/**
 * A peer as a tracker lists it.
 *
 * @since 0.1.0
 * @category models
 */
export interface PeerAddress {
  readonly ip: string
  readonly port: number
  /** Present in non-compact responses. */
  readonly peerId?: Uint8Array
}

/**
 * A tracker's answer. Intervals are in seconds.
 *
 * @since 0.1.0
 * @category models
 */
export interface AnnounceResponse {
  readonly interval: number
  readonly minInterval?: number
  /** Seeders. */
  readonly complete?: number
  /** Leechers. */
  readonly incomplete?: number
  readonly warning?: string
  readonly trackerId?: string
  readonly peers: ReadonlyArray<PeerAddress>
}

/**
 * One torrent's counts in a scrape.
 *
 * @since 0.1.0
 * @category models
 */
export interface ScrapeEntry {
  readonly complete: number
  readonly incomplete: number
  readonly downloaded: number
}

/**
 * Why a tracker request failed:
 * - `"Failure"`: the tracker refused (`failure reason`, UDP action 3): `failure` holds its message;
 * - `"Timeout"`: no answer in time (UDP: after the last retransmission);
 * - `"Network"`: DNS, connection or socket errors;
 * - `"Malformed"`: an answer that is not a valid tracker response;
 * - `"Http"`: an HTTP status other than 200 (`status`);
 * - `"Unsupported"`: a URL this client cannot use (bad syntax, unknown scheme).
 *
 * @since 0.1.0
 * @category models
 */
export type TrackerErrorReason = "Failure" | "Timeout" | "Network" | "Malformed" | "Http" | "Unsupported"

/**
 * @since 0.1.0
 * @category errors
 */
export class TrackerError extends Data.TaggedError("TrackerError")<{
  readonly reason: TrackerErrorReason
  readonly url: string
  /** The tracker's own message, for `"Failure"`. */
  readonly failure?: string
  /** The HTTP status, for `"Http"`. */
  readonly status?: number
  readonly detail?: string
  readonly cause?: unknown
}> {
  override get message(): string {
    const what =
      this.reason === "Failure"
        ? `tracker refused: ${this.failure ?? "(no reason given)"}`
        : this.reason === "Http"
          ? `HTTP status ${this.status ?? "?"}`
          : describe[this.reason]
    return `tracker ${this.url}: ${what}${this.detail === undefined ? "" : ` (${this.detail})`}`
  }
}

const describe: Record<TrackerErrorReason, string> = {
  Failure: "tracker refused",
  Timeout: "no response in time",
  Network: "network error",
  Malformed: "invalid response",
  Http: "HTTP error",
  Unsupported: "unsupported tracker URL"
}
