/**
 * The upload side against a peer that asks for a lot and then says nothing (upload.ts): the
 * kernel's buffers take what is written to a socket whose peer never reads, so the seeder would
 * send it megabytes; past `quietBytes` and `QUIET_MS` of silence it gets `TRICKLE_BYTES` a
 * second, and all it asked for once it speaks again. No sockets: a fake one that takes every byte.
 */
import { assert, describe, it } from "@effect/vitest"
import { BLOCK } from "../src/internal/picker.js"
import { QUIET_MS, quietBytes, TRICKLE_BYTES, Upload } from "../src/internal/upload.js"
import { fakeRead, fakeUploadPeer } from "./fakeUploadPeer.js"

const MIB = 1024 * 1024

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
  const peer = fakeUploadPeer({
    socket,
    now: () => now,
    read: (_piece, _begin, length, done) => {
      pending.push(() => done(fakeRead(length, (b) => b.bytes)))
    },
    pieceCount: 64,
    pieceLength,
    requestQueue: 2000,
    sendBufferBytes: 4 * MIB,
    perPeer: 64 * MIB
  })
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
