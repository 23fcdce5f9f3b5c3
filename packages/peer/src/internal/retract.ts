// Retraction: the companion of cut-through (cutThrough.ts). A target passes on the blocks of a
// piece from a seed before it has verified them; when that piece then fails its hash here, its
// receivers hold the same bad blocks with us as their sender, and their smart-ban (smartBan.ts)
// would strike or ban us, an honest forwarder, for a bad seed's (or a flaky disk's) bytes: one bad
// source could get every forwarder banned by every target. So on such a failure we tell the ezio
// peers that speak this extension (BEP 10, `ezio_retract`: a 4-byte big-endian piece index) that
// our copy was bad; each drops what it got of the piece from us and holds it against us no more,
// as often as its smart-ban allows (a peer cannot launder its own bad data this way for long).
// Per failed piece, never per block.
import * as Wire from "../Wire.js"
import { BLOCK } from "./picker.js"
import type { SmartBan } from "./smartBan.js"

/** The extension's name in the BEP 10 handshake's `m`. */
export const EZIO_RETRACT = "ezio_retract"
/** Our id for it: what peers send their retractions to us with. */
export const LOCAL_RETRACT_ID = 3

/** A connection, as retractions see it. */
export interface RetractPeer {
  readonly address: string
  readonly handshaken: boolean
  readonly remoteEzio: boolean
  /** The peer's id for ezio_retract; 0 if it does not speak it. */
  readonly remoteRetractId: number
  readonly send: (bytes: Uint8Array) => void
  readonly close: (why: string) => void
  readonly fill: () => void
}

/** The part of the swarm these functions use. */
export interface RetractCore {
  readonly connections: ReadonlySet<RetractPeer>
  readonly smartBan: SmartBan
  readonly picker: {
    has(piece: number): boolean
    readonly pieceCount: number
    readonly partial: ReadonlyMap<number, { readonly hashing: boolean }>
  }
  readonly unreceive: (piece: number, begin: number) => void
  readonly log: (message: string) => void
}

const payloadOf = (piece: number): Uint8Array => {
  const out = Buffer.allocUnsafe(4)
  out.writeUInt32BE(piece, 0)
  return out
}

/** Our copy of `piece`, passed on before it was verified, failed: its receivers are told. */
export const send = (core: RetractCore, piece: number): void => {
  const payload = payloadOf(piece)
  for (const c of core.connections)
    if (c.handshaken && c.remoteEzio && c.remoteRetractId > 0)
      c.send(Wire.encodeExtended(c.remoteRetractId, payload))
}

/**
 * `c` retracted its copy of a piece: the blocks of it that `c` sent are fetched again (unless it
 * passed already here, in which case what we kept was good) and `c` is not held to them. A
 * malformed message closes the connection.
 */
export const received = (core: RetractCore, c: RetractPeer, payload: Uint8Array): void => {
  if (payload.length !== 4) return c.close(`an ${EZIO_RETRACT} message of ${payload.length} bytes`)
  const piece = Buffer.from(payload.buffer, payload.byteOffset, 4).readUInt32BE(0)
  if (piece >= core.picker.pieceCount)
    return c.close(`${EZIO_RETRACT} for piece ${piece}, past the last piece`)
  if (core.picker.has(piece)) return
  const hashing = core.picker.partial.get(piece)?.hashing === true
  const blocks = core.smartBan.retracted(piece, c.address, hashing)
  if (blocks === undefined)
    return core.log(`peer ${c.address} retracted piece ${piece} once too often; not forgiven`)
  for (const block of blocks) core.unreceive(piece, block * BLOCK)
  if (blocks.length > 0) for (const other of core.connections) other.fill()
}
