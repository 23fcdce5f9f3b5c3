// Initial seeding's hooks in a swarm (initialSeeding.ts decides for ezio peers, superSeeding.ts
// for the others): which requests are served, the unsent pieces suggested to each ezio peer, and
// what other clients are told we have. Plain functions over the swarm's state.
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
  /** Unsent pieces suggested to each ezio peer at a time. */
  readonly suggestions: number
  /** When we last sent a block. */
  readonly lastUploadAt: number | undefined
  readonly now: () => number
}

/** Every piece was asked for, but one has not left whole for this long (its peer left midway). */
const STUCK_MS = 10_000

/** False if `c`'s request for `piece` is to be refused (another peer has it or is getting it). */
export const serves = (core: SeedingCore, c: Connection, piece: number): boolean => {
  const seeding = core.seeding
  if (seeding === undefined) return true
  if (core.superSeeding !== undefined && !core.superSeeding.allows(c, piece)) return false
  const strict = c.remoteEzio && c.remoteFast
  const before = seeding.unsent
  if (!seeding.serve(c, piece, strict, core.now())) return false
  if (strict && seeding.unsent < before) suggestTo(core, c)
  return true
}

/** Tops up the unsent pieces suggested to an ezio peer (initial seeding). */
export const suggestTo = (core: SeedingCore, c: Connection): void => {
  const seeding = core.seeding
  if (seeding === undefined || !seeding.active || !c.remoteEzio || !c.remoteFast) return
  const pieces = seeding.suggest(c, core.suggestions, (piece) => !c.peerHas(piece))
  for (const index of pieces) c.send(Wire.encode({ _tag: "Suggest", index }))
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

/** `length` bytes of `piece` were sent: once every piece is out, super-seeding ends. */
export const sent = (core: SeedingCore, piece: number, length: number): void => {
  if (core.firstSends?.sent(piece, length) === true) core.superSeeding?.finish()
}

/** Every half second while super-seeding goes on; false once it is over. */
export const tick = (core: SeedingCore): boolean => {
  const superSeeding = core.superSeeding
  if (superSeeding === undefined || superSeeding.done) return false
  const now = core.now()
  if (core.seeding?.active === false && now - (core.lastUploadAt ?? 0) >= STUCK_MS) superSeeding.finish()
  else superSeeding.tick(now)
  return !superSeeding.done
}
