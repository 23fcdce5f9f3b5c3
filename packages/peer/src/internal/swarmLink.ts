// The swarm's side of a peer connection, as the connection sees it: what the peer has and wants
// goes to the swarm (which keeps the picker's counts and the choker), blocks to request come back
// from it, received blocks go to it to be written. `SwarmCore` implements it for `Connection`.
import type { DiskIo } from "@ezio/disk-io"
import type { BufferPool } from "@ezio/pool"
import type { Bitfield } from "@ezio/storage"
import type { ExtensionHandshake } from "./wire/extension.js"
import type { Pick as PickedBlock, Picker, Requester } from "./picker.js"

/** A received block on its way to the disk. */
export interface BlockWrite extends DiskIo.BlockWrite {
  readonly length: number
}

export type ReadResult =
  | { readonly _tag: "Success"; readonly read: DiskIo.Read }
  | { readonly _tag: "Failure"; readonly message: string }

/**
 * Uploads' share of the pool: `held` is kept by the connections; the swarm sets the limits. A
 * peer may always hold `floor`; beyond it, at most `perPeer`, and only while all together hold
 * less than `limit`, so peers that never read cannot take every block.
 */
export interface UploadBudget {
  held: number
  floor: number
  perPeer: number
  limit: number
  /** Peers that want data, per swarm: one budget serves every swarm of a session. */
  readonly wanting: Map<object, number>
}

/** What a connection needs of its swarm (implemented by `SwarmCore`). */
export interface SwarmLink<C extends Requester> {
  readonly infoHash: Uint8Array
  /** The info dictionary's bytes, served to peers that start from a magnet link (BEP 9). */
  readonly infoBytes: Uint8Array
  readonly peerId: Uint8Array
  readonly handshakeBytes: Uint8Array
  readonly listenPort: number
  readonly options: {
    readonly requestQueue: number
    readonly downloadQueue: number
    readonly sendBufferBytes: number
  }
  /** What we have; the picker itself changes only through the swarm. */
  readonly picker: Pick<
    Picker<C>,
    "pieceCount" | "have" | "has" | "complete" | "count" | "pieceSize" | "blockKey"
  >
  readonly pool: Pick<BufferPool.BufferPoolService, "unsafeTryAcquire" | "unsafeIsExceeded">
  /** False once the torrent is complete or a disk error stopped the download. */
  readonly downloading: boolean
  /** The pool bytes uploads hold (reads in flight, blocks queued to sockets), and their limits. */
  readonly uploads: UploadBudget
  /** Milliseconds, from the swarm's Clock. */
  readonly now: () => number

  /** The BEP 10 extensions we speak, under the ids we receive them with (our handshake's `m`). */
  readonly extensionMap: Readonly<Record<string, number>>
  /** The peer's extension handshake arrived. */
  readonly extensionHandshake: (c: C, handshake: ExtensionHandshake) => void
  /** An extended message under one of our ids (not the handshake). */
  readonly extended: (c: C, id: number, payload: Uint8Array) => void

  /** False if another connection already talks to this peer id. */
  readonly admit: (c: C, peerId: Uint8Array) => boolean
  readonly removed: (c: C) => void
  readonly reportError: (message: string) => void
  /** Calls `f` once the pool is back below its high watermark. */
  readonly whenPoolNormal: (f: () => void) => void

  /** The peer has one more piece, or its whole bitfield joins (+1) or leaves (-1). */
  readonly peerHasPiece: (piece: number, bits: Bitfield.Bitfield) => void
  readonly peerBitfield: (bits: Bitfield.Bitfield | "all", delta: 1 | -1) => void
  readonly peerInterested: (c: C) => void
  readonly peerNotInterested: (c: C) => void
  /** The peer's extension handshake says it is ezio (it follows initial seeding's refusals). */
  readonly peerIsEzio: (c: C) => void
  /** True if super-seeding tells `c` what we have, instead of the bitfield after the handshake. */
  readonly hidesPieces: (c: C) => boolean

  /** Upload: 0 if `bytes` may go now, else ms to wait (then `wakeUpload`); one read per batch. */
  /** False if `c`'s request for `piece` is to be refused (initial seeding). */
  readonly serves: (c: C, piece: number) => boolean
  readonly uploadDelay: (bytes: number) => number
  readonly wakeUpload: (delay: number, f: () => void) => void
  readonly read: (piece: number, begin: number, length: number, done: (result: ReadResult) => void) => void
  /** `piece` was announced before it was verified (cutThrough.ts): its blocks are served as they come. */
  readonly promised: (piece: number) => boolean
  /** The bytes are in (a piece we have, or received blocks of a promised one). */
  readonly readable: (piece: number, begin: number, length: number) => boolean
  /** Calls `f` once more blocks of `piece` are in. */
  readonly whenReadable: (piece: number, f: () => void) => void
  /** A piece we have whose read failed: its requests are dropped, not re-read again and again. */
  readonly unreadable: (piece: number) => boolean
  /** `bytes` of `piece` went to `c`. */
  readonly uploaded: (c: C, bytes: number, piece: number) => void

  /** Download: up to `want` blocks to ask `c` for. */
  readonly pick: (c: C, want: number) => Array<PickedBlock>
  /** A block `c` sent arrived; false if unwanted. Others asked for it are cancelled. */
  readonly received: (c: C, piece: number, begin: number, length: number) => boolean
  /** Bytes received that were not needed (a duplicate, or a block cancelled too late). */
  readonly redundant: (bytes: number) => void
  /** `c` will not send this block (choked, rejected, closed). */
  readonly abandon: (c: C, piece: number, begin: number) => void
  /** A received block is lost after all (no pool block for it): fetch it again. */
  readonly unreceive: (piece: number, begin: number) => void
  /** One batch of received blocks to write; `done(exceeded)` when written. */
  readonly write: (batch: ReadonlyArray<BlockWrite>, done: (exceeded: boolean) => void) => void
}
