/**
 * The upload side against a peer that asks for a lot and then says nothing (upload.ts): the
 * kernel's buffers take what is written to a socket whose peer never reads, so the seeder would
 * send it megabytes; past `quietBytes` and `QUIET_MS` of silence it gets `TRICKLE_BYTES` a
 * second, and all it asked for once it speaks again. No sockets: a fake one that takes every byte.
 */
import { assert, describe, it } from "@effect/vitest"
import type { BufferPool } from "@ezio/pool"
import { BLOCK } from "../src/internal/picker.js"
import type { ReadResult } from "../src/internal/swarmLink.js"
import { QUIET_MS, quietBytes, TRICKLE_BYTES, Upload, type UploadPeer } from "../src/internal/upload.js"

const MIB = 1024 * 1024

interface FakePeer extends UploadPeer<FakePeer> {
  lastHeard: number
}

/** A peer of a seeder with 64 pieces of 1 MiB whose socket takes every byte; reads wait for `drain`. */
const make = (pieceLength = MIB) => {
  let now = 0
  const pending: Array<() => void> = []
  const socket = {
    writableLength: 0,
    cork: () => {},
    uncork: () => {},
    write: (_chunk: Uint8Array, callback?: () => void) => {
      if (callback !== undefined) queueMicrotask(callback)
      return true
    }
  }
  const block = () =>
    ({ bytes: new Uint8Array(BLOCK), released: false, release() {} }) as unknown as BufferPool.Block
  const swarm = {
    picker: { pieceCount: 64, has: () => true, pieceSize: () => pieceLength },
    options: { requestQueue: 2000, sendBufferBytes: 4 * MIB },
    uploads: { held: 0, floor: 256 * 1024, perPeer: 64 * MIB, limit: 1024 * MIB, wanting: new Map() },
    now: () => now,
    unreadable: () => false,
    serves: () => true,
    uploadDelay: () => 0,
    wakeUpload: () => {},
    uploaded: () => {},
    reportError: () => {},
    read: (_piece: number, _begin: number, length: number, done: (result: ReadResult) => void) => {
      const blocks = Array.from({ length: Math.ceil(length / BLOCK) }, block)
      const views = blocks.map((b) => b.bytes)
      pending.push(() => done({ _tag: "Success", read: { blocks, views, length, release: () => {} } }))
    }
  }
  const peer = {
    id: 1,
    swarm,
    socket,
    closed: false,
    remoteFast: true,
    amChoking: false,
    uploaded: 0,
    lastSent: 0,
    lastPayload: 0,
    lastHeard: 0,
    send: () => {},
    close: () => {}
  } as unknown as FakePeer
  const upload = new Upload(peer)
  return {
    upload,
    peer,
    at: (ms: number) => {
      now = ms
    },
    /** At the current time, `n` requests for the blocks from the start of `piece` on. */
    ask: (piece: number, n: number) => {
      peer.lastHeard = now
      for (let k = 0; k < n; k++) upload.request(piece + Math.floor(k / 64), (k % 64) * BLOCK, BLOCK)
      upload.pump()
    },
    /** Completes reads (and the reads they lead to) until none is left, at the current time. */
    drain: async () => {
      while (pending.length > 0) {
        for (const f of pending.splice(0)) f()
        await new Promise((resolve) => setTimeout(resolve, 0))
      }
    }
  }
}

describe("uploads to a peer that says nothing", () => {
  it("past the quiet limit a silent peer is trickled, and served in full once it speaks", async () => {
    const t = make()
    t.ask(0, 1024) // 16 MiB at once; 4 reads of 1 MiB go out at once
    t.at(QUIET_MS) // and then not a word from it
    await t.drain()
    assert.strictEqual(t.peer.uploaded, 4 * MIB, "only the reads in flight before it fell silent")
    assert.isAbove(4 * MIB, quietBytes(MIB))
    assert.strictEqual(t.upload.queued, 1024 - 256)
    // A trickle once a second, and no more than that.
    for (let second = 1; second <= 3; second++) {
      t.at(QUIET_MS + second * 1_000)
      t.upload.trickle()
      t.upload.pump()
      await t.drain()
      assert.strictEqual(t.peer.uploaded, 4 * MIB + second * TRICKLE_BYTES)
    }
    // It speaks (a request here; a have would do): everything it asked for goes.
    t.ask(63, 1)
    await t.drain()
    assert.strictEqual(t.upload.queued, 0)
    assert.strictEqual(t.peer.uploaded, (1024 + 1) * BLOCK)
  })

  it("a peer that asked for the whole of its last big piece gets all of it, however long it is silent", async () => {
    const piece = 16 * MIB // more than the reads that go out at once
    const t = make(piece)
    for (let k = 0; k < piece / BLOCK; k++) t.upload.request(0, k * BLOCK, BLOCK)
    t.upload.pump()
    t.at(10 * QUIET_MS) // a slow link: nothing more to ask until the piece is in
    await t.drain()
    assert.strictEqual(t.upload.queued, 0)
    assert.strictEqual(t.peer.uploaded, piece)
  })

  it("a peer that keeps asking as blocks come is not held back", async () => {
    const t = make()
    for (let k = 0; k < 64; k++) {
      t.at(k * 500)
      t.ask(k, 64)
      await t.drain()
      assert.strictEqual(t.upload.queued, 0, `piece ${k}`)
    }
    assert.strictEqual(t.peer.uploaded, 64 * MIB)
  })
})
