/**
 * Set-up shared by the tracker tests (Tracker, EmbeddedTracker, Opentracker): deterministic
 * 20-byte ids and announce requests.
 */
import { Effect } from "effect"
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

/**
 * Waits in real time (a test on the TestClock still does real I/O) until `done` holds, polling
 * every few milliseconds; fails the test after `limitMillis`.
 */
export const eventually = (done: () => boolean, what: string, limitMillis = 5000): Effect.Effect<void> =>
  Effect.promise(
    () =>
      new Promise<void>((resolve, reject) => {
        const start = Date.now()
        const poll = () => {
          if (done()) resolve()
          else if (Date.now() - start > limitMillis) reject(new Error(`timed out waiting for ${what}`))
          else setTimeout(poll, 2)
        }
        poll()
      })
  )

/** Lets real time pass (for I/O that should NOT happen), whatever clock the test runs on. */
export const realSleep = (millis: number): Effect.Effect<void> =>
  Effect.promise(() => new Promise<void>((resolve) => setTimeout(resolve, millis)))
