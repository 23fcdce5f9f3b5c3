// Which peers sent bad data, after libtorrent's smart-ban: every received block is attributed to
// the peer that sent it; when a piece fails its hash check, a digest of each of its blocks is
// remembered with its sender, and when the piece later passes, the senders whose blocks differ
// from the good ones are the culprits (banned at once). A piece that fails with every block from
// one peer counts against that peer directly (banned after `strikes` such pieces).
//
// After a failure the piece is fetched again from ONE peer at a time (so the next verdict is
// clear), never at once from a peer that alone sent a failing copy of it: that one waits a
// doubling backoff, so a swarm of only bad peers does not spin re-downloading the same piece.
// Plain JS: `sent` runs per received block; the rest once per failed or suspect piece.
import * as NCrypto from "node:crypto"

/** Who sent a block: the peer's address (host:port). */
export type Peer = string

export interface Options {
  /** Failed pieces wholly from one peer before it is banned. */
  readonly strikes: number
  /** How long one peer keeps the exclusive right to re-fetch a failed piece without progress. */
  readonly leaseMs: number
  /** First wait before a peer that alone sent a failing copy may fetch that piece again. */
  readonly backoffMs: number
}

export const defaults: Options = { strikes: 3, leaseMs: 15_000, backoffMs: 5_000 }

/** A peer to ban, and why. */
export interface Verdict {
  readonly peer: Peer
  readonly reason: string
}

interface Failed {
  /** Per block: the (sender, digest) pairs of the failed attempts. */
  readonly records: Array<Array<{ readonly peer: Peer; readonly digest: string }> | undefined>
  /** Peers that alone sent a failing copy: until when they may not fetch it, and how often. */
  readonly sole: Map<Peer, { until: number; count: number }>
  owner: Peer | undefined
  ownerUntil: number
  /** The peer that got a strike from the last failure (it alone sent the piece). */
  struck: Peer | undefined
}

/** Records kept per block: enough for a few failed attempts from different peers. */
const MAX_RECORDS = 8
const MAX_BACKOFF_MS = 5 * 60_000

/** One digest per block of a piece read whole into 16 KiB views (one per block). */
export const blockDigests = (views: ReadonlyArray<Uint8Array>): Array<string> =>
  views.map((v) => NCrypto.createHash("sha1").update(v).digest("base64"))

export class SmartBan {
  /** Who sent each block of a piece being downloaded (this attempt). */
  private readonly senders = new Map<number, Array<Peer | undefined>>()
  private readonly failed = new Map<number, Failed>()
  private readonly strikeCount = new Map<Peer, number>()
  /** Peers whose copy of a piece now being hashed is not to be held against them (retracted). */
  private readonly forgiven = new Map<number, Set<Peer>>()
  /** Retractions honoured, per peer. */
  private readonly retractions = new Map<Peer, number>()
  /** Banned peers and why. */
  readonly banned = new Map<Peer, string>()

  constructor(readonly options: Options = defaults) {}

  /** Some piece failed and is not yet resolved: `allows` may say no. */
  get suspicious(): boolean {
    return this.failed.size > 0
  }

  /** Retractions honoured so far (retract.ts). */
  get retractedCount(): number {
    let n = 0
    for (const count of this.retractions.values()) n += count
    return n
  }

  isBanned(peer: Peer): boolean {
    return this.banned.has(peer)
  }

  strikes(peer: Peer): number {
    return this.strikeCount.get(peer) ?? 0
  }

  /** Block `block` of `piece` arrived from `peer` (per block: one map lookup). */
  sent(piece: number, block: number, peer: Peer, now: number): void {
    let senders = this.senders.get(piece)
    if (senders === undefined) this.senders.set(piece, (senders = []))
    senders[block] = peer
    if (this.failed.size > 0) {
      const f = this.failed.get(piece)
      if (f !== undefined && f.owner === peer) f.ownerUntil = now + this.options.leaseMs
    }
  }

  /** May `peer` be asked for blocks of `piece` now? Claims a failed piece for it if free. */
  allows(piece: number, peer: Peer, now: number): boolean {
    const f = this.failed.get(piece)
    if (f === undefined) return true
    const sole = f.sole.get(peer)
    if (sole !== undefined && now < sole.until) return false
    if (f.owner === peer) return true
    if (f.owner !== undefined && now < f.ownerUntil) return false
    f.owner = peer
    f.ownerUntil = now + this.options.leaseMs
    return true
  }

  /** `peer` left: it no longer holds any failed piece. */
  left(peer: Peer): void {
    for (const f of this.failed.values()) if (f.owner === peer) f.owner = undefined
  }

  /**
   * `piece` failed its hash check; `digests` are its blocks' digests as received (undefined if
   * they could not be read). Returns the peers to ban now.
   */
  failedPiece(piece: number, digests: ReadonlyArray<string> | undefined, now: number): Array<Verdict> {
    const senders = this.senders.get(piece) ?? []
    this.senders.delete(piece)
    let f = this.failed.get(piece)
    if (f === undefined) {
      f = { records: [], sole: new Map(), owner: undefined, ownerUntil: 0, struck: undefined }
      this.failed.set(piece, f)
    }
    f.owner = undefined
    f.struck = undefined
    const forgiven = this.forgiven.get(piece)
    this.forgiven.delete(piece)
    const distinct = new Set<Peer>()
    for (let b = 0; b < senders.length; b++) {
      const peer = senders[b]
      if (peer === undefined || forgiven?.has(peer) === true) continue
      distinct.add(peer)
      const digest = digests?.[b]
      if (digest === undefined) continue
      const records = (f.records[b] ??= [])
      if (records.length < MAX_RECORDS && !records.some((r) => r.peer === peer && r.digest === digest))
        records.push({ peer, digest })
    }
    if (distinct.size !== 1) return []
    const [peer] = distinct as unknown as [Peer]
    const prior = f.sole.get(peer)
    const count = (prior?.count ?? 0) + 1
    f.sole.set(peer, {
      count,
      until: now + Math.min(MAX_BACKOFF_MS, this.options.backoffMs * 2 ** (count - 1))
    })
    const strikes = this.strikes(peer) + 1
    this.strikeCount.set(peer, strikes)
    f.struck = peer
    if (strikes < this.options.strikes || this.banned.has(peer)) return []
    return [this.ban(peer, `${strikes} pieces it alone sent failed their hash check`)]
  }

  /** Does `piece` need its digests when it passes (it failed before)? */
  needsDigests(piece: number): boolean {
    return this.failed.has(piece)
  }

  /**
   * `piece` passed; `digests` are its good blocks' digests (needed only if `needsDigests`).
   * Returns the peers that had sent different data for it.
   */
  passedPiece(piece: number, digests?: ReadonlyArray<string>): Array<Verdict> {
    this.senders.delete(piece)
    this.forgiven.delete(piece)
    const f = this.failed.get(piece)
    if (f === undefined) return []
    this.failed.delete(piece)
    if (digests === undefined) return []
    const culprits = new Set<Peer>()
    for (let b = 0; b < f.records.length; b++)
      for (const r of f.records[b] ?? []) if (r.digest !== digests[b]) culprits.add(r.peer)
    const out: Array<Verdict> = []
    for (const peer of culprits)
      if (!this.banned.has(peer)) out.push(this.ban(peer, `sent bad data for piece ${piece}`))
    return out
  }

  /**
   * `peer` says its copy of `piece` was bad (it passed the blocks on before verifying them, and
   * they failed its hash: retract.ts). What it sent of the piece is not held against it: a
   * failure already counted loses its records of `peer` and the strike it gave `peer`, a copy
   * being hashed now (`hashing`) will fail without them. Returns the blocks of the current attempt
   * it sent, to fetch again (none while `hashing`); undefined, and nothing forgiven, once `peer`
   * has retracted as many pieces as `strikes`: an honest forwarder retracts only until its bad
   * source is banned, a peer sending bad data of its own would retract for ever.
   */
  retracted(piece: number, peer: Peer, hashing: boolean): ReadonlyArray<number> | undefined {
    const senders = this.senders.get(piece)
    const f = this.failed.get(piece)
    // Told to every ezio peer: one that got nothing of the piece from `peer` has nothing to forgive.
    const involved =
      senders?.includes(peer) === true ||
      (f !== undefined && (f.sole.has(peer) || f.records.some((rs) => rs?.some((r) => r.peer === peer))))
    if (!involved) return []
    const count = (this.retractions.get(peer) ?? 0) + 1
    if (count > this.options.strikes) return undefined
    this.retractions.set(peer, count)
    if (f !== undefined) {
      for (let b = 0; b < f.records.length; b++) f.records[b] = f.records[b]?.filter((r) => r.peer !== peer)
      f.sole.delete(peer)
      if (f.struck === peer) {
        f.struck = undefined
        this.strikeCount.set(peer, this.strikes(peer) - 1)
      }
    }
    if (hashing) {
      let set = this.forgiven.get(piece)
      if (set === undefined) this.forgiven.set(piece, (set = new Set()))
      set.add(peer)
      return []
    }
    const blocks: Array<number> = []
    if (senders !== undefined)
      for (let b = 0; b < senders.length; b++)
        if (senders[b] === peer) {
          senders[b] = undefined
          blocks.push(b)
        }
    return blocks
  }

  /**
   * The blocks `peer` sent of pieces still being downloaded: once it is banned, they are fetched
   * again from others instead of spoiling more pieces. The record stays: a piece already being
   * hashed keeps the banned peer among its senders, so its failure is not laid on the others.
   */
  blocksOf(peer: Peer): Array<{ readonly piece: number; readonly block: number }> {
    const out: Array<{ piece: number; block: number }> = []
    for (const [piece, senders] of this.senders)
      for (let b = 0; b < senders.length; b++) if (senders[b] === peer) out.push({ piece, block: b })
    return out
  }

  private ban(peer: Peer, reason: string): Verdict {
    this.banned.set(peer, reason)
    return { peer, reason }
  }
}
