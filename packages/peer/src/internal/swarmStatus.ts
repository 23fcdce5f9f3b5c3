// A swarm's clockwork and its status: once a second the rates (the swarm's and each peer's, which
// sizes its request queue) and the copy into `PeerMetrics`, a nudge to idle peers and a periodic
// sync if due; every 5 s keep-alives and dead or stuck peers; `status` reads it all for
// `Swarm.unsafeStatus`.
import * as Effect from "effect/Effect"
import * as Wire from "../Wire.js"
import { BLOCK } from "./picker.js"
import type { SwarmCore } from "./swarm.js"
import * as SwarmMetrics from "./swarmMetrics.js"
import * as Verify from "./swarmVerify.js"

/**
 * Seconds of a peer's measured rate kept requested from it, and the fewest requests kept. Two
 * seconds (our requests to a peer we also upload to wait behind what we send it) made more blocks
 * arrive twice in the end game of the shaped swarm bench (sent by all / kept 1.026-1.028 against
 * 1.009-1.013, interleaved) and the last target no sooner.
 */
export const QUEUE_SECONDS = 1
export const MIN_QUEUE = 8
/**
 * The fewest requests kept with a seed: 2 MiB. A seeder's link is shared by every target, so our
 * share of it, and the rate measured over a second, swings (0.1-2 MiB/s per target at 8 @ 50
 * Mbit/s), and a queue sized to that second left the seeder waiting on our requests when its
 * link freed: the last unsent pieces of initial seeding crawled out at the rate of a bad second.
 * What a seed sends us (in initial seeding, pieces nobody else has) is never an end-game duplicate
 * of another peer's. Shaped swarm bench, interleaved: 8 @ 50 last done 25.8-26.5 s against
 * 26.4-29.1, 16 @ 25 29.2 and 30.1 against 31.2 and 32.1.
 */
export const SEED_QUEUE = 128

/** What `sampleRates` reads and sets of a connection. */
export interface RateSampled {
  readonly downloaded: number
  downloadedAtSample: number
  rate: number
  requestDepth: number
  /** The peer has every piece. */
  readonly isSeed: boolean
}

/** A socket that holds unsent bytes this long without progress belongs to a peer that stopped reading. */
const SEND_STALL_MS = 30_000

/** Once a second: each peer's request queue follows its measured rate (a seed's, at least `SEED_QUEUE`). */
export const sampleRates = (core: {
  readonly options: { readonly downloadQueue: number }
  readonly connections: Iterable<RateSampled>
}): void => {
  const max = core.options.downloadQueue
  for (const c of core.connections) {
    c.rate = Math.max(c.downloaded - c.downloadedAtSample, c.rate / 2)
    c.downloadedAtSample = c.downloaded
    const least = c.isSeed ? SEED_QUEUE : MIN_QUEUE
    c.requestDepth = Math.min(max, Math.max(least, Math.ceil((c.rate * QUEUE_SECONDS) / BLOCK)))
  }
}

/** Keep-alives and dead-peer detection, every 5 s. */
export const tick = (core: SwarmCore): void => {
  const now = core.now()
  core.updateSendCap()
  for (const c of [...core.connections]) {
    c.checkSendProgress(now, SEND_STALL_MS)
    if (c.closed) continue
    if (now - c.lastReceived > 150_000) c.close("no message for 150 s")
    else if (now - c.lastSent > 60_000) c.send(Wire.encodeKeepAlive())
    if (!c.handshaken && now - c.lastReceived > 20_000) c.close("no handshake within 20 s")
  }
}

/** Pieces we lack that at least one connected peer has. */
const missingAvailable = (core: SwarmCore): number => {
  const picker = core.picker
  if (picker.complete || core.connections.size === 0) return 0
  let n = 0
  for (let i = 0; i < picker.pieceCount; i++) if (!picker.has(i) && picker.availability[i]! > 0) n++
  return n
}

/** Starts the swarm's 1 s loop in the current scope; its `status` is the session's `Status`. */
export const monitor = (core: SwarmCore) =>
  Effect.gen(function* () {
    let rates = { up: 0, down: 0, lastUp: 0, lastDown: 0, ticks: 0 }
    const syncMetrics = SwarmMetrics.make(core)
    // the last second's counts too, when the swarm stops
    yield* Effect.addFinalizer(() => syncMetrics)
    yield* Effect.forkScoped(
      Effect.forever(
        Effect.zipRight(
          Effect.sleep("1 second"),
          Effect.suspend(() => {
            rates = {
              up: core.uploadedBytes - rates.lastUp,
              down: core.downloadedBytes - rates.lastDown,
              lastUp: core.uploadedBytes,
              lastDown: core.downloadedBytes,
              ticks: rates.ticks + 1
            }
            sampleRates(core)
            for (const c of core.connections) c.trickleUpload()
            Verify.wakeIdle(core)
            Verify.syncIfDue(core)
            if (rates.ticks % 5 === 0) tick(core)
            return syncMetrics
          })
        )
      )
    )
    const status = () => {
      let peers = 0
      let seeds = 0
      for (const c of core.connections)
        if (c.handshaken) {
          peers++
          if (c.isSeed) seeds++
        }
      return {
        peers,
        uploaded: core.uploadedBytes,
        downloaded: core.downloadedBytes,
        uploadRate: rates.up,
        downloadRate: rates.down,
        redundant: core.redundantBytes,
        have: core.picker.count,
        pieces: core.metainfo.pieceCount,
        complete: core.picker.complete,
        downloading: core.downloading,
        hashFailures: core.hashFailures,
        retracted: core.smartBan.retractedCount,
        banned: core.banned,
        errors: core.errors,
        seeds,
        lastUploadAt: core.lastUploadAt,
        ...(core.failure === undefined ? {} : { failure: core.failure }),
        missingAvailable: missingAvailable(core),
        ...(core.firstSends === undefined
          ? {}
          : {
              initialSeeding: {
                ...core.firstSends.status,
                refused: core.seeding?.refused ?? 0,
                offered: core.superSeeding?.offeredCount ?? 0
              }
            })
      }
    }
    return { status }
  })
