// Who we upload to. EZIO unchokes every interested peer (slots = Infinity). With a number of upload
// slots, the first interested peers take them; every rotation period the peer that has held a slot
// longest gives it to the one that has waited longest, and every third period one more waiting peer
// gets an optimistic slot, so every leecher is served in turn and none waits forever.
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import type * as Scope from "effect/Scope"

/** What the choker needs of a peer: its choke state and the two messages. */
export interface Chokeable {
  readonly amChoking: boolean
  readonly closed: boolean
  readonly choke: () => void
  readonly unchoke: () => void
}

/** How often slots rotate; the optimistic slot moves every `OPTIMISTIC_ROUNDS` rotations. */
export const ROTATION = Duration.seconds(10)
export const OPTIMISTIC_ROUNDS = 3

export class Choker<P extends Chokeable> {
  /** Regular slot holders, with when each was unchoked. */
  private readonly holders = new Map<P, number>()
  private readonly waiting: Array<P> = []
  private optimisticPeer: P | undefined
  private rounds = 0

  constructor(
    readonly slots: number,
    private readonly now: () => number,
    private readonly rotationMs = Duration.toMillis(ROTATION)
  ) {}

  /** Peers holding a slot, the optimistic one included. */
  get unchoked(): number {
    return this.holders.size + (this.optimisticPeer === undefined ? 0 : 1)
  }

  /** The peer in the optimistic slot, if any. */
  get optimistic(): P | undefined {
    return this.optimisticPeer
  }

  /** Peers interested and waiting for a slot, longest-waiting first. */
  get queue(): ReadonlyArray<P> {
    return this.waiting
  }

  interested(peer: P): void {
    if (!peer.amChoking) return
    if (this.holders.size < this.slots) this.grant(peer)
    else if (!this.waiting.includes(peer)) this.waiting.push(peer)
  }

  notInterested(peer: P): void {
    this.unqueue(peer)
    if (this.slots !== Infinity && !peer.amChoking) {
      peer.choke()
      this.release(peer)
    }
  }

  /** The peer is gone (closed). */
  removed(peer: P): void {
    this.unqueue(peer)
    if (!peer.amChoking) this.release(peer)
  }

  /** One rotation period has passed (`make` calls it from a fiber). */
  rotate(): void {
    if (this.slots === Infinity) return
    const now = this.now()
    if (this.waiting.length > 0) {
      let longest: P | undefined
      let since = Infinity
      for (const [peer, at] of this.holders)
        if (at < since) {
          longest = peer
          since = at
        }
      if (longest !== undefined && now - since >= this.rotationMs) {
        this.holders.delete(longest)
        longest.choke()
        this.waiting.push(longest)
        this.grant(this.waiting.shift()!)
      }
    }
    if (++this.rounds % OPTIMISTIC_ROUNDS !== 0 || this.waiting.length === 0) return
    const previous = this.optimisticPeer
    const next = this.waiting.shift()!
    this.optimisticPeer = next
    next.unchoke()
    if (previous !== undefined && !previous.amChoking) {
      previous.choke()
      this.waiting.push(previous)
    }
  }

  private grant(peer: P): void {
    this.holders.set(peer, this.now())
    peer.unchoke()
  }

  private unqueue(peer: P): void {
    const i = this.waiting.indexOf(peer)
    if (i >= 0) this.waiting.splice(i, 1)
  }

  private release(peer: P): void {
    if (peer === this.optimisticPeer) {
      this.optimisticPeer = undefined
      return
    }
    if (!this.holders.delete(peer)) return
    const next = this.waiting.shift()
    if (next !== undefined && !next.closed) this.grant(next)
  }
}

/**
 * A choker on the Clock: its rotation runs in a fiber of the scope (none with unlimited slots),
 * so tests drive it with `TestClock`.
 */
export const make = <P extends Chokeable>(slots: number): Effect.Effect<Choker<P>, never, Scope.Scope> =>
  Effect.gen(function* () {
    const clock = yield* Effect.clock
    const choker = new Choker<P>(slots, () => clock.unsafeCurrentTimeMillis())
    if (slots !== Infinity)
      yield* Effect.forkScoped(
        Effect.forever(
          Effect.zipRight(
            Effect.sleep(ROTATION),
            Effect.sync(() => choker.rotate())
          )
        )
      )
    return choker
  })
