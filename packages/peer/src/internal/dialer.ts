// The peers a swarm knows of (from trackers, `connect`, PEX) and when to dial each: at once when
// first heard of, again after a failure or a lost connection with exponential backoff per
// address (reset by a successful handshake). Never two connections to one peer: not to an
// address connected or being dialled, not to an address whose peer id is connected already, and
// not to ourselves. A plain class on the swarm's Clock; `run` is the fiber that drives it.
import * as Clock from "effect/Clock"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"

export interface DialerOptions {
  /** Connections (incoming and outgoing) at most. */
  readonly maxPeers: number
  /**
   * Dial only while there are fewer connections than this: the slots above it are kept for
   * peers that dial us, so a target that joins late still finds peers with room for it.
   */
  readonly dialLimit: number
  /** First wait after a failure; doubles per failure up to `maxBackoff`. Default 1 s. */
  readonly initialBackoff?: Duration.DurationInput
  /** Default 60 s. */
  readonly maxBackoff?: Duration.DurationInput
  /** Known peers at most (PEX and trackers may offer many); new ones past it are ignored. Default 2000. */
  readonly maxKnown?: number
}

/** What the swarm does for the dialer: open a connection (its outcome comes back as calls). */
export interface DialerHost {
  readonly dial: (host: string, port: number, address: string) => void
  /** Connections now, incoming and outgoing, handshaken or not. */
  readonly connections: () => number
  /** Peers not worth dialling now (e.g. a seed when we are one too). */
  readonly wanted: (address: string) => boolean
}

/** Where a peer was heard of; "incoming" is the listen port a peer that dialled us gave. */
export type PeerSource = "tracker" | "manual" | "pex" | "incoming"

interface Known {
  readonly host: string
  readonly port: number
  readonly source: PeerSource
  backoff: number
  /** Milliseconds on the Clock when it may be dialled next. */
  due: number
  /** Between `dial` and its outcome (a handshake or a failure). */
  dialing: boolean
  /** Between `dial` and the TCP connect (counted in `inFlight`, the connection not yet a swarm's). */
  opening: boolean
  connected: boolean
  /** Learned at its first handshake (or a refused duplicate). */
  peerId: string | undefined
  attempts: number
}

/** `host:port`, with IPv6 hosts in brackets so the key is unambiguous. */
export const addressKey = (host: string, port: number): string =>
  host.includes(":") ? `[${host}]:${port}` : `${host}:${port}`

export class Dialer {
  readonly maxPeers: number
  readonly dialLimit: number
  readonly initialBackoff: number
  readonly maxBackoff: number
  readonly maxKnown: number
  private readonly known = new Map<string, Known>()
  /** How many live, handshaken connections each peer id has (0 or 1 but for races). */
  private readonly connectedIds = new Map<string, number>()
  /** Addresses that turned out to be us. */
  private readonly selves = new Set<string>()
  private inFlight = 0
  /** Set when a peer becomes dialable sooner than the driver planned; `run` waits on it. */
  private wake: (() => void) | undefined

  constructor(
    options: DialerOptions,
    private readonly host: DialerHost,
    private readonly now: () => number
  ) {
    this.maxPeers = options.maxPeers
    this.dialLimit = Math.min(options.dialLimit, options.maxPeers)
    this.initialBackoff = Duration.toMillis(options.initialBackoff ?? "1 second")
    this.maxBackoff = Duration.toMillis(options.maxBackoff ?? "60 seconds")
    this.maxKnown = options.maxKnown ?? 2000
  }

  get size(): number {
    return this.known.size
  }

  get dialing(): number {
    return this.inFlight
  }

  /** The state of one address, for tests and status. */
  peer(
    host: string,
    port: number
  ):
    | {
        readonly due: number
        readonly backoff: number
        readonly attempts: number
        readonly connected: boolean
      }
    | undefined {
    const k = this.known.get(addressKey(host, port))
    return k === undefined
      ? undefined
      : { due: k.due, backoff: k.backoff, attempts: k.attempts, connected: k.connected }
  }

  /** A peer heard of; dialled at the next `step` if new. Returns its address key. */
  add(host: string, port: number, source: PeerSource): string | undefined {
    if (!(port > 0 && port <= 65535) || host.length === 0) return undefined
    const address = addressKey(host, port)
    if (this.selves.has(address)) return undefined
    const existing = this.known.get(address)
    if (existing !== undefined) {
      // Told again by `connect` (a user, a test): worth a try now rather than at the backoff's end.
      if (source === "manual" && !existing.connected && !existing.dialing) {
        existing.due = Math.min(existing.due, this.now())
        this.poke()
      }
      return address
    }
    if (this.known.size >= this.maxKnown) return undefined
    this.known.set(address, {
      host,
      port,
      source,
      backoff: this.initialBackoff,
      due: this.now(),
      dialing: false,
      opening: false,
      connected: false,
      peerId: undefined,
      attempts: 0
    })
    this.poke()
    return address
  }

  /** Dials every peer that is due, up to the limits. Returns how many dials it started. */
  step(): number {
    const now = this.now()
    let started = 0
    for (const [address, k] of this.known) {
      if (this.host.connections() + this.inFlight >= this.dialLimit) break
      if (k.due > now || !this.dialable(address, k)) continue
      k.dialing = true
      k.opening = true
      k.attempts++
      this.inFlight++
      started++
      this.host.dial(k.host, k.port, address)
    }
    return started
  }

  private dialable(address: string, k: Known): boolean {
    if (k.dialing || k.connected) return false
    if (k.peerId !== undefined && (this.connectedIds.get(k.peerId) ?? 0) > 0) return false
    return this.host.wanted(address)
  }

  /** Milliseconds until the next peer is due (undefined: none waits, or no slot is free). */
  nextDue(): number | undefined {
    if (this.host.connections() + this.inFlight >= this.dialLimit) return undefined
    const now = this.now()
    let next: number | undefined
    for (const [address, k] of this.known) {
      if (!this.dialable(address, k)) continue
      const wait = Math.max(0, k.due - now)
      if (next === undefined || wait < next) next = wait
    }
    return next
  }

  /** The TCP connection is up: it counts among the swarm's connections from now on. */
  opened(address: string): void {
    const k = this.known.get(address)
    if (k === undefined || !k.opening) return
    k.opening = false
    this.inFlight--
  }

  private settle(k: Known): void {
    if (k.opening) this.inFlight--
    k.opening = false
    k.dialing = false
  }

  /** The dial did not end in a handshake (refused, timed out, closed early, wrong torrent). */
  failed(address: string): void {
    this.retryLater(address)
  }

  /** The peer answered with a handshake: the backoff starts over. */
  handshaken(address: string, peerId: string): void {
    const k = this.known.get(address)
    if (k === undefined) return
    this.settle(k)
    k.connected = true
    k.peerId = peerId
    k.backoff = this.initialBackoff
  }

  /** A handshaken connection closed: dial it again after its (reset) backoff. */
  lost(address: string): void {
    this.retryLater(address)
  }

  /** Dial `address` again after its backoff, which doubles (up to the maximum) for the next time. */
  private retryLater(address: string): void {
    const k = this.known.get(address)
    if (k === undefined) return
    this.settle(k)
    k.connected = false
    k.due = this.now() + k.backoff
    k.backoff = Math.min(k.backoff * 2, this.maxBackoff)
    this.poke()
  }

  /** The peer at `address` has this id (e.g. we were refused as a duplicate of it). */
  identify(address: string, peerId: string): void {
    const k = this.known.get(address)
    if (k !== undefined) k.peerId = peerId
  }

  /** The address is our own listening socket: never dial it again. */
  self(address: string): void {
    const k = this.known.get(address)
    if (k !== undefined) this.settle(k)
    this.known.delete(address)
    this.selves.add(address)
  }

  /** A connection with this peer id was admitted (either direction). */
  peerConnected(peerId: string): void {
    this.connectedIds.set(peerId, (this.connectedIds.get(peerId) ?? 0) + 1)
  }

  /** A connection with this peer id closed; its addresses may be dialled again. */
  peerDisconnected(peerId: string): void {
    const n = (this.connectedIds.get(peerId) ?? 0) - 1
    if (n > 0) this.connectedIds.set(peerId, n)
    else {
      this.connectedIds.delete(peerId)
      this.poke()
    }
  }

  /** A connection slot freed up, or something else changed what `step` would do. */
  poke(): void {
    const f = this.wake
    this.wake = undefined
    f?.()
  }

  /** Resolves at the next `poke` (one waiter: the driver). */
  waitPoke(): Effect.Effect<void> {
    return Effect.async<void>((resume) => {
      const wake = () => resume(Effect.void)
      this.wake = wake
      return Effect.sync(() => {
        if (this.wake === wake) this.wake = undefined
      })
    })
  }
}

/** Most time the driver sleeps between looks, in case a poke was missed (slots freed elsewhere). */
const IDLE = 5_000

/**
 * Drives a dialer for ever: dials what is due, then sleeps on the Clock until the next peer is
 * due or something pokes it (a new peer, a failure, a freed slot).
 */
export const run = (dialer: Dialer): Effect.Effect<never> =>
  Effect.forever(
    Effect.suspend(() => {
      dialer.step()
      const wait = Math.min(dialer.nextDue() ?? IDLE, IDLE)
      return Effect.raceFirst(Clock.sleep(Duration.millis(Math.max(wait, 10))), dialer.waitPoke())
    })
  )
