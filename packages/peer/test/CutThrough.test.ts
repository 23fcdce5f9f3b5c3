/**
 * Cut-through (cutThrough.ts): a target passes on a piece coming from a seed block by block as it
 * arrives, announced to ezio peers on its first block. The bookkeeping alone; the upload side
 * waiting for blocks not in yet (fake socket and swarm); and three real sessions in a chain
 * (seed → A → B, B knowing only A) where B gets a piece's bytes from A before A has verified it.
 */
import { assert, describe, expect, it } from "@effect/vitest"
import { DiskIo } from "@ezio/disk-io"
import { Session, Wire } from "@ezio/peer"
import { BufferPool } from "@ezio/pool"
import { Hasher, Layout, Storage } from "@ezio/storage"
import type { Metainfo } from "@ezio/torrent"
import { Effect, Either, Layer, Schedule } from "effect"
import { CutThrough } from "../src/internal/cutThrough.js"
import { BLOCK } from "../src/internal/picker.js"
import { PROMISE_WAIT_MS, Upload } from "../src/internal/upload.js"
import { type FakePeer, fakeRead, fakeUploadPeer } from "./fakeUploadPeer.js"
import { full, makeTorrent, random } from "./torrentSupport.js"

const MIB = 1024 * 1024

describe("CutThrough bookkeeping", () => {
  it("promises a piece once, on its first block from a seed, and never the last one missing", () => {
    const cut = new CutThrough(4, () => 4)
    cut.fromSeed(2, 0)
    cut.fromSeed(2, 0)
    assert.deepStrictEqual([...cut.flush()], [2])
    assert.deepStrictEqual([...cut.flush()], [])
    assert.isTrue(cut.isPromised(2))
    cut.fromSeed(0, 1) // 1 verified + 1 promised + this one < 4
    assert.deepStrictEqual([...cut.flush()], [0])
    // 1 verified + 2 promised: promising the fourth would make us look like a seed.
    cut.fromSeed(3, 1)
    assert.deepStrictEqual([...cut.flush()], [])
    assert.isFalse(cut.isPromised(3))
    assert.strictEqual(cut.promisedPieces, 2)
  })

  it("a block is readable only once written; forgotten and reset blocks are not; verified ends the promise", () => {
    const cut = new CutThrough(4, () => 4)
    cut.fromSeed(1, 0)
    assert.isFalse(cut.readable(1, 0, BLOCK))
    cut.wrote(1, 0)
    cut.wrote(1, BLOCK)
    assert.isTrue(cut.readable(1, 0, 2 * BLOCK))
    assert.isFalse(cut.readable(1, 0, 3 * BLOCK))
    cut.forget(1, BLOCK)
    assert.isFalse(cut.readable(1, BLOCK, BLOCK))
    cut.reset(1)
    assert.isFalse(cut.readable(1, 0, BLOCK))
    let woken = 0
    cut.whenReadable(1, () => woken++)
    cut.whenReadable(1, () => woken++)
    assert.isTrue(cut.waiting)
    cut.verified(1)
    assert.strictEqual(woken, 2)
    assert.isFalse(cut.waiting)
    assert.isFalse(cut.isPromised(1))
    assert.strictEqual(cut.promisedPieces, 0)
  })
})

/**
 * An upload whose pieces 0 and 3 are promised (not had) and come in block by block as the test
 * says, piece 2 is had, piece 1 neither; each piece's waiters are woken by its own blocks only.
 */
const promisedUpload = () => {
  let now = 0
  const written = new Set<string>()
  const waiters = new Map<number, Array<() => void>>()
  const reads: Array<{ piece: number; begin: number; length: number }> = []
  const rejected: Array<{ piece: number; begin: number }> = []
  const socket = {
    writableLength: 0,
    cork: () => {},
    uncork: () => {},
    write: (_chunk: Uint8Array, callback?: () => void) => {
      callback?.()
      return true
    }
  }
  const promised = (piece: number) => piece === 0 || piece === 3
  const peer = fakeUploadPeer({
    socket,
    now: () => now,
    read: (piece, begin, length, done) => {
      reads.push({ piece, begin, length })
      done(fakeRead(length, (b) => b.bytes))
    },
    pieceCount: 4,
    pieceLength: 4 * BLOCK,
    requestQueue: 500,
    sendBufferBytes: 4 * MIB,
    perPeer: 64 * MIB,
    has: (piece) => piece === 2,
    promised,
    readable: (piece, begin, length) => {
      if (!promised(piece)) return piece === 2
      for (let b = begin / BLOCK; b < (begin + length) / BLOCK; b++)
        if (!written.has(`${piece}:${b}`)) return false
      return true
    },
    whenReadable: (piece, f) => {
      const list = waiters.get(piece) ?? []
      list.push(f)
      waiters.set(piece, list)
    },
    send: (bytes) => {
      // <len 13><id><index><begin><length>
      const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength)
      if (bytes.length === 17 && bytes[4] === Wire.MessageId.RejectRequest)
        rejected.push({ piece: view.getUint32(5), begin: view.getUint32(9) })
    }
  })
  const upload: Upload<FakePeer> = new Upload(peer)
  return {
    upload,
    reads,
    rejected,
    arrive: (piece: number, ...blocks: Array<number>) => {
      for (const b of blocks) written.add(`${piece}:${b}`)
      const list = waiters.get(piece) ?? []
      waiters.delete(piece)
      for (const f of list) f()
    },
    advance: (ms: number) => {
      now += ms
    }
  }
}

describe("Upload of a promised piece", () => {
  it("serves only the blocks already in, in one read, and the rest as they come", () => {
    const t = promisedUpload()
    for (let b = 0; b < 4; b++) t.upload.request(0, b * BLOCK, BLOCK)
    t.upload.pump()
    assert.deepStrictEqual(t.reads, [])
    t.arrive(0, 0, 1)
    assert.deepStrictEqual(t.reads, [{ piece: 0, begin: 0, length: 2 * BLOCK }])
    t.arrive(0, 2)
    t.arrive(0, 3)
    assert.deepStrictEqual(t.reads, [
      { piece: 0, begin: 0, length: 2 * BLOCK },
      { piece: 0, begin: 2 * BLOCK, length: BLOCK },
      { piece: 0, begin: 3 * BLOCK, length: BLOCK }
    ])
    assert.strictEqual(t.upload.queued, 0)
  })

  it("what is queued behind blocks not in yet is served meanwhile", () => {
    const t = promisedUpload()
    t.upload.request(0, 0, BLOCK)
    t.upload.request(2, 0, BLOCK)
    t.upload.request(2, BLOCK, BLOCK)
    t.upload.pump()
    assert.deepStrictEqual(t.reads, [{ piece: 2, begin: 0, length: 2 * BLOCK }])
    assert.strictEqual(t.upload.queued, 1)
    t.arrive(0, 0)
    assert.deepStrictEqual(t.reads, [
      { piece: 2, begin: 0, length: 2 * BLOCK },
      { piece: 0, begin: 0, length: BLOCK }
    ])
    assert.strictEqual(t.upload.queued, 0)
  })

  it("a wait moves to the piece now first: its blocks wake the upload", () => {
    const t = promisedUpload()
    t.upload.request(0, 0, BLOCK)
    t.upload.pump()
    t.upload.cancel(0, 0, BLOCK)
    t.upload.request(3, 0, BLOCK)
    t.upload.pump()
    t.arrive(3, 0)
    assert.deepStrictEqual(t.reads, [{ piece: 3, begin: 0, length: BLOCK }])
  })

  it("refuses a piece neither had nor promised, and a promise kept waiting too long", () => {
    const t = promisedUpload()
    t.upload.request(1, 0, BLOCK)
    assert.deepStrictEqual(t.rejected, [{ piece: 1, begin: 0 }])
    t.upload.request(0, 0, BLOCK)
    t.upload.request(0, BLOCK, BLOCK)
    t.upload.request(2, 0, BLOCK)
    t.upload.pump()
    t.upload.checkSendProgress(0, 60_000)
    t.advance(PROMISE_WAIT_MS)
    t.upload.checkSendProgress(PROMISE_WAIT_MS, 60_000)
    assert.deepStrictEqual(t.rejected, [
      { piece: 1, begin: 0 },
      { piece: 0, begin: 0 },
      { piece: 0, begin: BLOCK }
    ])
    // What was behind the stuck piece goes on.
    assert.deepStrictEqual(t.reads, [{ piece: 2, begin: 0, length: BLOCK }])
    assert.strictEqual(t.upload.queued, 0)
  })
})

const env = DiskIo.layer().pipe(
  Layer.provideMerge(Hasher.layer({ threads: 2 })),
  Layer.provideMerge(BufferPool.layer({ capacity: 32 * MIB }))
)

/**
 * Three sessions in a chain: a seeder serving `source` at `rate` bytes a second, A downloading
 * from it, and B, which knows only A.
 */
const chain = (meta: Metainfo.Metainfo, source: Storage.StorageService, rate: number) =>
  Effect.gen(function* () {
    const layout = Either.getOrThrow(Layout.fromMetainfo(meta))
    const seeder = yield* Session.make({ host: "127.0.0.1", port: 0 })
    const a = yield* Session.make({ host: "127.0.0.1", port: 0 })
    const b = yield* Session.make({ host: "127.0.0.1", port: 0, listen: false })
    yield* seeder.add({ metainfo: meta, storage: source, have: full(meta), uploadRateLimit: rate })
    const aSwarm = yield* a.add({ metainfo: meta, storage: yield* Storage.makeMemory({ layout }) })
    const bStorage = yield* Storage.makeMemory({ layout })
    const bSwarm = yield* b.add({ metainfo: meta, storage: bStorage })
    yield* aSwarm.connect("127.0.0.1", seeder.port)
    yield* bSwarm.connect("127.0.0.1", a.port)
    return { aSwarm, bSwarm, bStorage }
  })

describe("cut-through between sessions", () => {
  it.live(
    "B, which knows only A, gets a piece's bytes from A before A has verified it, and a byte-identical copy",
    () =>
      Effect.gen(function* () {
        const data = random(3 * MIB)
        const meta = makeTorrent(data, MIB)
        const layout = Either.getOrThrow(Layout.fromMetainfo(meta))
        // A piece takes about two seconds to reach A.
        const { aSwarm, bSwarm, bStorage } = yield* chain(
          meta,
          yield* Storage.makeMemory({ layout, bytes: data }),
          512 * 1024
        )
        // The moment B has its first bytes, A has verified nothing yet.
        const aHadThen = yield* Effect.sync(() =>
          bSwarm.unsafeStatus().downloaded > 0 ? aSwarm.unsafeStatus().have : undefined
        ).pipe(
          Effect.flatMap((have) => (have === undefined ? Effect.fail("not yet") : Effect.succeed(have))),
          Effect.retry(Schedule.spaced("5 millis")),
          Effect.timeout("20 seconds")
        )
        expect(aHadThen).toBe(0)
        yield* bSwarm.complete.pipe(Effect.timeout("40 seconds"))
        yield* DiskIo.DiskIo.pipe(Effect.flatMap((disk) => disk.flush(bSwarm.disk)))
        expect(Buffer.compare(bStorage.bytes, data)).toBe(0)
        expect(bSwarm.unsafeStatus().hashFailures).toBe(0)
      }).pipe(Effect.scoped, Effect.provide(env)),
    60_000
  )

  it.live(
    "a piece A passed on and then failed is retracted: B fetches it again, holds nothing against A, and completes",
    () =>
      Effect.gen(function* () {
        const data = random(4 * MIB)
        const meta = makeTorrent(data, MIB)
        const layout = Either.getOrThrow(Layout.fromMetainfo(meta))
        // The seeder's first piece read comes out wrong until A has failed it (a flaky disk).
        const source = yield* Storage.makeMemory({ layout, bytes: Buffer.from(data) })
        let bad: number | undefined
        let healed = false
        const flaky: Storage.StorageService = {
          ...source,
          read: (piece, offset, buffers) =>
            Effect.tap(source.read(piece, offset, buffers), () => {
              bad ??= piece
              if (piece === bad && !healed) for (const b of buffers) b.fill(0x5a)
            })
        }
        const { aSwarm, bSwarm, bStorage } = yield* chain(meta, flaky, 1024 * 1024)
        yield* Effect.sync(() => aSwarm.unsafeStatus().hashFailures > 0).pipe(
          Effect.repeat({ schedule: Schedule.spaced("5 millis"), until: (failed) => failed }),
          Effect.timeout("20 seconds")
        )
        healed = true
        yield* bSwarm.complete.pipe(Effect.timeout("40 seconds"))
        yield* DiskIo.DiskIo.pipe(Effect.flatMap((disk) => disk.flush(bSwarm.disk)))
        expect(Buffer.compare(bStorage.bytes, data)).toBe(0)
        const status = bSwarm.unsafeStatus()
        expect(status.retracted).toBe(1)
        expect(status.banned).toEqual([])
      }).pipe(Effect.scoped, Effect.provide(env)),
    60_000
  )
})
