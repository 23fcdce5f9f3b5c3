/**
 * A connection's upload side without sockets or a swarm (upload.ts's tests): a peer whose socket,
 * clock and disk reads are the test's, and whose swarm serves every request with no rate limit.
 */
import type { BufferPool } from "@ezio/pool"
import { BLOCK } from "../src/internal/picker.js"
import type { ReadResult } from "../src/internal/swarmLink.js"
import type { UploadPeer } from "../src/internal/upload.js"

export interface FakePeer extends UploadPeer<FakePeer> {
  lastHeard: number
}

/** What the upload side writes to. */
export interface FakeSocket {
  writableLength: number
  readonly cork: () => void
  readonly uncork: () => void
  readonly write: (chunk: Uint8Array, callback?: () => void) => boolean
}

/** A pool block of its own, never returned to a pool. */
export const fakeBlock = () =>
  ({ bytes: new Uint8Array(BLOCK), released: false, release() {} }) as unknown as BufferPool.Block

/** `length` bytes read as `fakeBlock`s: what a read's `done` is given. */
export const fakeRead = (length: number, views: (block: BufferPool.Block) => Uint8Array): ReadResult => {
  const blocks = Array.from({ length: Math.ceil(length / BLOCK) }, fakeBlock)
  return { _tag: "Success", read: { blocks, views: blocks.map(views), length, release: () => {} } }
}

/** A peer of a seeder with `pieceCount` pieces of `pieceLength` whose uploads may hold `perPeer`. */
export const fakeUploadPeer = (options: {
  readonly socket: FakeSocket
  readonly now: () => number
  readonly read: (piece: number, begin: number, length: number, done: (result: ReadResult) => void) => void
  readonly pieceCount: number
  readonly pieceLength: number
  readonly requestQueue: number
  readonly sendBufferBytes: number
  readonly perPeer: number
  /** Pieces we have (every one unless told); the others may be promised (cutThrough.ts). */
  readonly has?: (piece: number) => boolean
  readonly promised?: (piece: number) => boolean
  readonly readable?: (piece: number, begin: number, length: number) => boolean
  readonly whenReadable?: (piece: number, f: () => void) => void
  /** What the peer is sent besides pieces (rejects). */
  readonly send?: (bytes: Uint8Array) => void
}): FakePeer => {
  const swarm = {
    picker: {
      pieceCount: options.pieceCount,
      has: options.has ?? (() => true),
      pieceSize: () => options.pieceLength
    },
    promised: options.promised ?? (() => false),
    readable: options.readable ?? (() => true),
    whenReadable: options.whenReadable ?? (() => {}),
    options: { requestQueue: options.requestQueue, sendBufferBytes: options.sendBufferBytes },
    uploads: {
      held: 0,
      floor: 256 * 1024,
      perPeer: options.perPeer,
      limit: 1024 * 1024 * 1024,
      wanting: new Map()
    },
    now: options.now,
    unreadable: () => false,
    serves: () => true,
    uploadDelay: () => 0,
    wakeUpload: () => {},
    uploaded: () => {},
    reportError: () => {},
    read: options.read
  }
  return {
    id: 1,
    swarm,
    socket: options.socket,
    closed: false,
    remoteFast: true,
    amChoking: false,
    uploaded: 0,
    lastSent: 0,
    lastPayload: 0,
    lastHeard: 0,
    send: options.send ?? (() => {}),
    close: () => {}
  } as unknown as FakePeer
}
