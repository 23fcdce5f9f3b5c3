/**
 * Set-up shared by the tracker tests (Tracker, EmbeddedTracker, Opentracker): deterministic
 * 20-byte ids and announce requests.
 */
import type * as Tracker from "../src/Tracker.js"

/** 20 bytes that differ per `seed` (info-hashes and peer ids). */
export const bytes20 = (seed: number) =>
  Uint8Array.from({ length: 20 }, (_, i) => (seed * 31 + i * 17) & 0xff)

/** An announce of `left: 1000` and nothing transferred, with `extra` on top. */
export const request = (
  peerId: Uint8Array,
  infoHash: Uint8Array,
  port: number,
  extra: Partial<Tracker.AnnounceRequest> = {}
) =>
  ({
    infoHash,
    peerId,
    port,
    uploaded: 0,
    downloaded: 0,
    left: 1000,
    ...extra
  }) satisfies Tracker.AnnounceRequest
