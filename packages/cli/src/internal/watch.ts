// What ends a download that will not finish, checked once a second: a disk error that stopped it
// (exit 4, `DownloadFailed`) or no progress for the stall timeout (exit 6, `Stalled`, saying
// why). Verified pieces stay on the target (the storage syncs when the scope closes), so a
// restart resumes from them.
import type { Session } from "@ezio/peer"
import * as Clock from "effect/Clock"
import * as Effect from "effect/Effect"
import { DownloadFailed, Stalled } from "./errors.js"

/** Why nothing arrives, from what the swarm sees now. */
export const stallReason = (s: Session.Status, badSinceLastPiece: number): string =>
  s.peers === 0
    ? s.banned.length > 0
      ? `no peers: ${s.banned.length} banned for bad data (${s.banned[0]})`
      : "no peers"
    : badSinceLastPiece > 0
      ? `only bad data (${badSinceLastPiece} piece(s) failed their hash check)`
      : s.missingAvailable === 0
        ? `no connected peer has them (${s.peers} peer(s))`
        : `peers have ${s.missingAvailable} of them but sent no data`

/**
 * One check per call (the status loop's tick): fails once the download cannot finish. Progress is
 * a new verified piece, or bytes received since one while no hash check failed.
 */
export const make = (options: {
  readonly path: string
  readonly stallTimeoutMs: number
  readonly status: () => Session.Status
}) => {
  let have = -1
  let downloaded = 0
  let failuresAtPiece = 0
  let progressAt = 0
  return Effect.flatMap(Clock.currentTimeMillis, (now): Effect.Effect<void, DownloadFailed | Stalled> => {
    const s = options.status()
    if (s.complete) return Effect.void
    if (s.failure !== undefined)
      return Effect.fail(
        new DownloadFailed({ path: options.path, detail: s.failure, have: s.have, pieces: s.pieces })
      )
    if (s.have > have || s.have === s.pieces) {
      // (All verified: only the final sync is left.)
      have = s.have
      failuresAtPiece = s.hashFailures
      progressAt = now
    } else if (s.downloaded > downloaded && s.hashFailures === failuresAtPiece) progressAt = now
    downloaded = s.downloaded
    if (options.stallTimeoutMs <= 0 || now - progressAt < options.stallTimeoutMs) return Effect.void
    const seconds = Math.round(options.stallTimeoutMs / 1000)
    return Effect.fail(
      new Stalled({
        path: options.path,
        missing: s.pieces - s.have,
        pieces: s.pieces,
        reason: `no progress for ${seconds} s: ${stallReason(s, s.hashFailures - failuresAtPiece)}`
      })
    )
  })
}
