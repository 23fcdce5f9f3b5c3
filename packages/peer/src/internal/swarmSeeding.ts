// Initial seeding's hooks in a swarm (initialSeeding.ts decides): which requests are served, and
// the unsent pieces suggested to each ezio peer. Plain functions over the swarm's state.
import * as Wire from "../Wire.js"
import type { Connection } from "./connection.js"
import type { InitialSeeding } from "./initialSeeding.js"

/** The part of the swarm these functions use. */
export interface SeedingCore {
  /** Initial seeding, while the swarm started complete and some piece has not left it. */
  readonly seeding: InitialSeeding<Connection> | undefined
  /** Unsent pieces suggested to each ezio peer at a time. */
  readonly suggestions: number
  readonly now: () => number
}

/** False if `c`'s request for `piece` is to be refused (another peer has it or is getting it). */
export const serves = (core: SeedingCore, c: Connection, piece: number): boolean => {
  const seeding = core.seeding
  if (seeding === undefined) return true
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
