// Who makes room at the connection limit. Without it, peers that connect and then do nothing
// (handshake, keep-alives, no interest) hold every slot and keep real targets out. A newcomer
// evicts the peer idle longest: one past its grace period that neither side is interested in,
// or that has moved no payload either way for `idleMs`. A peer that has said nothing since its
// handshake is idle sooner, after `silentMs` (every client says what it has or wants at once).
// Peers trading blocks are never evicted.
// Plain functions over what a connection already tracks; times are the swarm's Clock millis.

/** What the policy reads of a connection. */
export interface Peer {
  readonly amInterested: boolean
  readonly peerInterested: boolean
  /** When the connection was made. */
  readonly connectedAt: number
  /** When a block last went either way (`connectedAt` before any). */
  readonly lastPayload: number
  /** Handshaken, and no message from it since (keep-alives aside). */
  readonly silent?: boolean
}

export interface Options {
  /** A new connection is left alone this long (to handshake and say what it wants). */
  readonly graceMs: number
  /** No payload either way for this long makes even an interested peer idle. */
  readonly idleMs: number
  /** A handshaken peer that has said nothing since for this long is idle. */
  readonly silentMs: number
}

export const defaults: Options = { graceMs: 5_000, idleMs: 60_000, silentMs: 1_000 }

/** Idle: past its grace, and neither side interested or no payload for `idleMs`; or silent for `silentMs`. */
export const isIdle = (peer: Peer, now: number, options: Options = defaults): boolean => {
  const age = now - peer.connectedAt
  if (peer.silent === true && !peer.amInterested && age >= options.silentMs) return true
  return (
    age >= options.graceMs &&
    ((!peer.amInterested && !peer.peerInterested) || now - peer.lastPayload >= options.idleMs)
  )
}

/** The idle peer to evict for a newcomer: the one with the oldest payload; none if nobody is idle. */
export const victim = <P extends Peer>(
  peers: Iterable<P>,
  now: number,
  options: Options = defaults
): P | undefined => {
  let best: P | undefined
  for (const p of peers) {
    if (!isIdle(p, now, options)) continue
    if (
      best === undefined ||
      p.lastPayload < best.lastPayload ||
      (p.lastPayload === best.lastPayload && p.connectedAt < best.connectedAt)
    )
      best = p
  }
  return best
}
