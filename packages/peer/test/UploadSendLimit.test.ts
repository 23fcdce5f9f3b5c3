/**
 * What one connection has queued (bytes Node holds for its socket plus reads in flight) is capped
 * by time (upload.ts, `sendLimit`): on a slow link everything else we send that peer waits behind
 * about a second of data, not megabytes; on a fast one the queue stays as deep as before.
 * No sockets: a fake one drains at a set rate on a fake clock, reads complete after a set time.
 */
import { assert, describe, it } from "@effect/vitest"
import { BLOCK } from "../src/internal/picker.js"
import {
  SEND_QUEUE_FLOOR,
  SEND_QUEUE_MS,
  SOCKET_QUEUE_FLOOR,
  SOCKET_QUEUE_MS,
  sendCeiling,
  sendLimit,
  Upload
} from "../src/internal/upload.js"
import { type FakePeer, fakeRead, fakeUploadPeer } from "./fakeUploadPeer.js"

const MIB = 1024 * 1024
const SEND_BUFFER = 4 * MIB

/**
 * A peer of a seeder with 256 pieces of 1 MiB, behind a link of `rate` bytes a second: its socket
 * holds what is written (`writableLength`) and passes it on at that rate as the clock advances
 * (`run`), calling each write's callback once its bytes left; a read completes `readMs` after it
 * was asked for.
 */
const make = (rate: number, readMs = 1) => {
  let now = 0
  const queue: Array<{ left: number; callback: (() => void) | undefined }> = []
  /** Every chunk written, in order: what the peer receives. */
  const written: Array<Uint8Array> = []
  const reads: Array<{ at: number; complete: () => void }> = []
  let upload: Upload<FakePeer> | undefined
  let peakBacklog = 0
  const socket = {
    writableLength: 0,
    cork: () => {},
    uncork: () => {},
    write: (chunk: Uint8Array, callback?: () => void) => {
      queue.push({ left: chunk.length, callback })
      written.push(chunk)
      socket.writableLength += chunk.length
      return socket.writableLength < 16 * 1024
    }
  }
  const peer = fakeUploadPeer({
    socket,
    now: () => now,
    read: (_piece, _begin, length, done) => {
      reads.push({
        at: now + readMs,
        complete: () => done(fakeRead(length, (b) => b.bytes.subarray(0, Math.min(BLOCK, length))))
      })
      peakBacklog = Math.max(peakBacklog, upload!.backlog)
    },
    pieceCount: 256,
    pieceLength: MIB,
    requestQueue: 100_000,
    sendBufferBytes: SEND_BUFFER,
    perPeer: 1024 * MIB
  })
  upload = new Upload(peer)
  const u = upload
  let next = 0
  return {
    upload: u,
    peer,
    socket,
    written,
    get now() {
      return now
    },
    /** The most the connection had queued when it started a read, since the last call. */
    peakBacklog: () => {
      const peak = peakBacklog
      peakBacklog = 0
      return peak
    },
    /** The peer asks for the next `n` blocks (it is heard from). */
    ask: (n: number) => {
      peer.lastHeard = now
      for (let k = 0; k < n; k++, next++) u.request(Math.floor(next / 64) % 256, (next % 64) * BLOCK, BLOCK)
      u.pump()
    },
    /**
     * Advances the clock `ms` in 1 ms steps: reads complete, the link passes bytes on, and the
     * peer says something every 250 ms (a reading peer announces the pieces it completes).
     */
    run: (ms: number, each?: () => void) => {
      for (let step = 0; step < ms; step++) {
        now++
        if (now % 250 === 0) peer.lastHeard = now
        const due = reads.filter((r) => r.at <= now)
        if (due.length > 0) {
          reads.splice(0, reads.length, ...reads.filter((r) => r.at > now))
          for (const r of due) r.complete()
        }
        let budget = rate / 1000
        while (budget > 0 && queue.length > 0) {
          const head = queue[0]!
          const n = Math.min(budget, head.left)
          head.left -= n
          budget -= n
          socket.writableLength -= n
          if (head.left <= 0) {
            queue.shift()
            head.callback?.()
          }
        }
        if (socket.writableLength === 0) u.pump() // "drain"
        each?.()
      }
    }
  }
}

describe("sendLimit", () => {
  it("is SEND_QUEUE_MS of the rate, between the floor and the ceiling", () => {
    const ceiling = sendCeiling(SEND_BUFFER)
    assert.strictEqual(ceiling, SEND_BUFFER + 4 * MIB, "the send buffer and four 1 MiB reads, as before")
    assert.strictEqual(sendLimit(0, ceiling), SEND_QUEUE_FLOOR)
    assert.strictEqual(sendLimit(100_000, ceiling), SEND_QUEUE_FLOOR)
    assert.strictEqual(sendLimit(2 * MIB, ceiling), Math.floor((2 * MIB * SEND_QUEUE_MS) / 1000))
    assert.strictEqual(sendLimit(1024 * MIB, ceiling), ceiling)
  })
})

describe("a connection's send queue", () => {
  it("on a slow link holds SEND_QUEUE_MS of its rate, not megabytes, and the link stays busy", () => {
    const rate = 900_000 // a 50 Mbit/s link shared by seven uploads
    const t = make(rate)
    t.ask(64 * 64) // 64 MiB asked for at once, far more than the link can take in a while
    // Before its rate is known a connection may queue its send buffer (four reads of 1 MiB)...
    assert.strictEqual(t.upload.backlog, SEND_BUFFER)
    t.run(100)
    assert.isAtMost(t.peakBacklog(), SEND_BUFFER)
    // ... which drains; from then on it queues no more than the limit.
    t.run(5_000)
    t.peakBacklog()
    const sentBefore = t.peer.uploaded
    let worst = 0
    t.run(5_000, () => (worst = Math.max(worst, t.upload.backlog)))
    const limit = sendLimit(rate, sendCeiling(SEND_BUFFER))
    assert.isAtMost(t.upload.sendLimit, 2 * limit, "the limit follows the rate measured")
    // What a HAVE or a request written now waits behind, in time: about SEND_QUEUE_MS.
    assert.isAtMost(worst, limit + 64 * 1024, `queued ${worst} B at ${rate} B/s`)
    assert.isAtMost(t.peakBacklog(), 1.1 * limit)
    assert.isBelow((worst * 1000) / rate, 1.5 * SEND_QUEUE_MS)
    // And the link was kept busy: five seconds of its rate went.
    assert.isAtLeast(t.peer.uploaded - sentBefore, 0.97 * 5 * rate)
  })

  it("on a fast link stays as deep as before: four 1 MiB reads in flight besides the send buffer", () => {
    const rate = 400 * MIB
    const t = make(rate, 3)
    let reads4 = 0
    let deepest = 0
    const u = t.upload
    t.ask(256 * 64)
    t.run(300, () => {
      deepest = Math.max(deepest, u.backlog)
      if (u.backlog > 4 * MIB) reads4++
    })
    assert.strictEqual(u.sendLimit, sendCeiling(SEND_BUFFER), "at the ceiling")
    assert.isAbove(reads4, 0, "more than the send buffer alone was queued at times")
    assert.isAtMost(deepest, sendCeiling(SEND_BUFFER) + MIB)
    // 300 ms at 400 MiB/s is 120 MiB: the queue never starved the link for long.
    assert.isAtLeast(t.peer.uploaded, 100 * MIB)
  })

  it("after a slow start the limit grows with the rate the link takes", () => {
    const rate = 100 * MIB
    const t = make(rate)
    t.ask(16) // a trickle of requests: the rate measured is low
    t.run(1_000)
    assert.strictEqual(t.upload.sendLimit, SEND_QUEUE_FLOOR)
    t.ask(64 * 64)
    const before = t.peer.uploaded
    t.run(500)
    assert.strictEqual(t.upload.sendLimit, sendCeiling(SEND_BUFFER))
    assert.isAtLeast(t.peer.uploaded - before, 0.8 * 0.5 * rate, "most of the link's rate")
  })
})

describe("the outbox", () => {
  /** A HAVE as the session writes it: straight to the socket, between whatever else is queued. */
  const have = (piece: number) => {
    const m = new Uint8Array(9)
    new DataView(m.buffer).setUint32(0, 5)
    m[4] = 4
    new DataView(m.buffer).setUint32(5, piece)
    return m
  }

  it("keeps all but a few ms of the queue out of the socket: a HAVE waits behind that, not the queue", () => {
    const rate = 900_000
    const t = make(rate)
    t.ask(64 * 64)
    t.run(5_000) // the rate is measured, the queue is at its limit
    const limit = sendLimit(rate, sendCeiling(SEND_BUFFER))
    const socketQueue = Math.max(SOCKET_QUEUE_FLOOR, Math.floor((rate * SOCKET_QUEUE_MS) / 1000))
    assert.strictEqual(t.upload.socketQueue, socketQueue)
    let ahead = 0
    let deepest = 0
    let havesSent = 0
    t.run(2_000, () => {
      deepest = Math.max(deepest, t.upload.backlog)
      if (t.now % 50 === 0) {
        // What a HAVE written now waits behind: the socket's bytes, at most its share and one message.
        ahead = Math.max(ahead, t.socket.writableLength)
        t.socket.write(have(havesSent++))
      }
    })
    assert.isAbove(deepest, 0.8 * limit, "the queue as a whole is still about SEND_QUEUE_MS deep")
    assert.isAtMost(
      ahead,
      socketQueue + BLOCK + 13,
      `${ahead} B ahead of a HAVE, socket share ${socketQueue} B`
    )
    assert.isBelow(
      ahead,
      limit / 8,
      "under a tenth of the second's worth queued (the 64 KiB floor: ~90 ms here)"
    )
    assert.isAtLeast(t.peer.uploaded, 0.97 * 7 * rate, "and the link stayed busy")
  })

  it("hands the socket whole piece messages: nothing written meanwhile lands inside one", () => {
    const t = make(900_000)
    t.ask(64 * 64)
    let haves = 0
    t.run(3_000, () => {
      if (t.now % 7 === 0) t.socket.write(have(haves++))
    })
    // Walk the byte stream the peer receives: every message is whole, piece messages included.
    let i = 0
    let pieces = 0
    let seen = 0
    while (i < t.written.length) {
      const head = t.written[i++]!
      const view = new DataView(head.buffer, head.byteOffset, head.byteLength)
      const length = view.getUint32(0)
      if (head[4] === 4) {
        assert.strictEqual(head.length, 9, "a HAVE, on its own")
        seen++
        continue
      }
      assert.strictEqual(head[4], 7, "a piece message's header")
      assert.strictEqual(head.length, 13)
      let body = length - 9
      while (body > 0) {
        const part = t.written[i++]!
        assert.notStrictEqual(part.length, 9, "no HAVE inside a piece message")
        body -= part.length
      }
      assert.strictEqual(body, 0, "the parts add up to the block")
      pieces++
    }
    assert.strictEqual(seen, haves)
    assert.isAbove(pieces, 100)
  })
})
