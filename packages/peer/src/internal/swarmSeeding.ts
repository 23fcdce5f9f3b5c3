// Initial seeding's hooks in a swarm (initialSeeding.ts decides for ezio peers, superSeeding.ts
// for the others): which requests are served, the unsent pieces suggested to each ezio peer, the
// ezio peers furthest behind once every piece is out (the tail), and what other clients are told
// we have. Plain functions over the swarm's state.
import * as Wire from "../Wire.js"
import type { Connection } from "./connection.js"
import type { InitialSeeding } from "./initialSeeding.js"
import type { Announcer, FirstSends, SuperSeeding } from "./superSeeding.js"

/** The part of the swarm these functions use. */
export interface SeedingCore {
  /** Initial seeding, while the swarm started complete and some piece has not left it. */
  readonly seeding: InitialSeeding<Connection> | undefined
  /** Super-seeding (BEP 16) of the peers that are not ezio, with `seeding`. */
  readonly superSeeding: SuperSeeding<Connection> | undefined
  /** What left the seeder until every piece had, with `seeding`. */
  readonly firstSends: FirstSends | undefined
  /** Per piece, the connected peers that have it (the picker's). */
  readonly availability: ArrayLike<number>
  /** Unsent pieces suggested to each ezio peer at a time. */
  readonly suggestions: number
  /** When we last sent a block. */
  readonly lastUploadAt: number | undefined
  readonly connections: ReadonlySet<Connection>
  readonly now: () => number
}

/** A peer that plays along with initial seeding (initialSeeding.ts's `strict`): ezio, with BEP 6. */
const playsAlong = (c: Connection): boolean => c.remoteEzio && c.remoteFast

/** Ezio peers served in the tail at a time (initialSeeding.ts): the ones with the fewest pieces. */
const TAIL_PEERS = 2
/** How often the peers furthest behind are looked for again. */
const TAIL_REFRESH_MS = 500

/** The peers furthest behind, per swarm, and when they were found. */
const tails = new WeakMap<SeedingCore, { at: number; peers: ReadonlySet<Connection> }>()

/**
 * The `TAIL_PEERS` ezio peers with the fewest pieces (none complete), found again at most every
 * `TAIL_REFRESH_MS`; a peer newly among them is suggested the rarest pieces it lacks (it may have
 * been refused them: a suggestion lifts that).
 */
const behind = (core: SeedingCore, seeding: InitialSeeding<Connection>): ReadonlySet<Connection> => {
  const now = core.now()
  const last = tails.get(core)
  if (last !== undefined && now - last.at < TAIL_REFRESH_MS) return last.peers
  const counts: Array<{ c: Connection; n: number }> = []
  for (const c of core.connections) if (playsAlong(c) && !c.isSeed) counts.push({ c, n: c.pieceCount() })
  counts.sort((a, b) => a.n - b.n)
  const peers = new Set(counts.slice(0, TAIL_PEERS).map((x) => x.c))
  tails.set(core, { at: now, peers })
  if (seeding.tail > 0)
    for (const c of peers) if (last === undefined || !last.peers.has(c)) suggestRarest(core, c, seeding)
  return peers
}

/** Suggests to `c` the least available pieces it lacks, as many as ezio peers are suggested. */
const suggestRarest = (core: SeedingCore, c: Connection, seeding: InitialSeeding<Connection>): void => {
  const availability = core.availability
  const n = seeding.pieceCount
  const offset = Math.floor(Math.random() * n)
  const lacks: Array<number> = []
  // From a random start, so that ties (a stable sort keeps their order) differ between peers.
  for (let k = 0; k < n; k++) if (!c.peerHas((k + offset) % n)) lacks.push((k + offset) % n)
  lacks.sort((a, b) => availability[a]! - availability[b]!)
  for (const index of lacks.slice(0, core.suggestions)) c.send(Wire.encode({ _tag: "Suggest", index }))
}

/** Every piece was asked for, but one has not left whole for this long (its peer left midway). */
const STUCK_MS = 10_000

/** False if `c`'s request for `piece` is to be refused (another peer has it or is getting it). */
export const serves = (core: SeedingCore, c: Connection, piece: number): boolean => {
  const seeding = core.seeding
  if (seeding === undefined) return true
  if (core.superSeeding !== undefined && !core.superSeeding.allows(c, piece, core.now())) return false
  const strict = playsAlong(c)
  const before = seeding.unsent
  // The tail only once every piece has left whole: until then the link is the last pieces'.
  const tail =
    strict &&
    !seeding.active &&
    core.firstSends?.allOut === true &&
    seeding.tail > 0 &&
    behind(core, seeding).has(c)
  if (!seeding.serve(c, piece, strict, core.now(), tail)) {
    // A peer refused may have no unsent piece suggested to it (the last ones went to others).
    if (strict && seeding.active) refusedTopUp(core, c)
    return false
  }
  if (strict && seeding.unsent < before) suggestTo(core, c)
  return true
}

/** Ezio peers a swarm suggests unsent pieces to: the connected ezio peers still downloading. */
const downloaders = (core: SeedingCore): number => {
  let n = 0
  for (const c of core.connections) if (playsAlong(c) && !c.isSeed) n++
  return Math.max(1, n)
}

/**
 * Tops up the unsent pieces suggested to an ezio peer (initial seeding): `suggestions` of them, or
 * fewer once few are left, so that the last unsent pieces are spread over every downloader (each
 * takes only its share of the seeder's link: the last pieces held by a few would leave it idle).
 */
export const suggestTo = (core: SeedingCore, c: Connection): void => {
  const seeding = core.seeding
  if (seeding === undefined || !seeding.active || !playsAlong(c)) return
  const keep = Math.min(core.suggestions, Math.ceil(seeding.unsent / downloaders(core)))
  const pieces = seeding.suggest(c, keep, (piece) => !c.peerHas(piece))
  for (const index of pieces) c.send(Wire.encode({ _tag: "Suggest", index }))
}

/** A refused peer is topped up at most this often (refusals come per block). */
const TOP_UP_MS = 250
const toppedUp = new WeakMap<Connection, number>()

const refusedTopUp = (core: SeedingCore, c: Connection): void => {
  const now = core.now()
  const at = toppedUp.get(c)
  if (at !== undefined && now - at < TOP_UP_MS) return
  toppedUp.set(c, now)
  suggestTo(core, c)
}

/** How super-seeding's messages go to a connection. */
export const announcer: Announcer<Connection> = {
  none: (c) => {
    if (c.remoteFast) c.send(Wire.encode({ _tag: "HaveNone" }))
  },
  all: (c) => c.advertise(),
  have: (c, pieces) => {
    const out = Buffer.allocUnsafe(pieces.length * 9)
    for (let i = 0; i < pieces.length; i++) out.set(Wire.encodeHave(pieces[i]!), i * 9)
    c.send(out)
  }
}

/** `length` bytes of `piece` were sent to `c`: once every piece is out, super-seeding ends. */
export const sent = (core: SeedingCore, c: Connection, piece: number, length: number): void => {
  const firstSends = core.firstSends
  if (firstSends === undefined || firstSends.allOut) return
  core.superSeeding?.sent(c, piece, length, firstSends.pieceSize(piece), core.now())
  if (firstSends.sent(piece, length)) core.superSeeding?.finish()
}

/** Every half second while super-seeding or the tail goes on; false once both are over. */
export const tick = (core: SeedingCore): boolean => {
  const seeding = core.seeding
  const tail = seeding !== undefined && seeding.tail > 0
  if (tail && !seeding.active) behind(core, seeding)
  const superSeeding = core.superSeeding
  if (superSeeding === undefined || superSeeding.done) return tail
  const now = core.now()
  if (seeding?.active === false && now - (core.lastUploadAt ?? 0) >= STUCK_MS) superSeeding.finish()
  else superSeeding.tick(now)
  return tail || !superSeeding.done
}
