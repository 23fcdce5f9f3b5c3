/**
 * The request queue we advertise (`reqq`) and serve: a peer that keeps a deep pipeline of requests
 * outstanding gets every one of them served, from a pool much smaller than what it asked for.
 */
import * as NCrypto from "node:crypto"
import * as NFS from "node:fs"
import * as Net from "node:net"
import * as NOS from "node:os"
import * as NPath from "node:path"
import { assert, describe, it } from "@effect/vitest"
import { DiskIo } from "@ezio/disk-io"
import { Session, Wire } from "@ezio/peer"
import { BufferPool } from "@ezio/pool"
import { Bitfield, Create, Hasher, Layout, Storage } from "@ezio/storage"
import { Effect, Either, Layer, type Scope } from "effect"
import { MIN_QUEUE, QUEUE_SECONDS, SEED_QUEUE, sampleRates } from "../src/internal/swarmStatus.js"

const POOL = 4 * 1024 * 1024
const PIECE = 256 * 1024
const BLOCK = 16 * 1024

const env = DiskIo.layer().pipe(
  Layer.provideMerge(Hasher.layer({ threads: 1 })),
  Layer.provideMerge(BufferPool.layer({ capacity: POOL }))
)

/** A seeder of `size` random bytes (256 KiB pieces) on 127.0.0.1. */
const seeder = (size: number, options: Partial<Session.SwarmOptions> = {}) =>
  Effect.gen(function* () {
    const dir = yield* Effect.acquireRelease(
      Effect.sync(() => NFS.mkdtempSync(NPath.join(NOS.tmpdir(), "ezio-reqq-"))),
      (dir) => Effect.sync(() => NFS.rmSync(dir, { recursive: true, force: true }))
    )
    const file = NPath.join(dir, "disk.img")
    const data = NCrypto.randomBytes(size)
    NFS.writeFileSync(file, data)
    const meta = yield* Create.fromPath(file, { pieceLength: PIECE })
    const have = Bitfield.make(meta.pieceCount)
    Bitfield.setAll(have)
    const layout = Either.getOrThrow(Layout.fromMetainfo(meta))
    const storage = yield* Storage.makeDirectory({ layout, root: dir, mode: "read" })
    const session = yield* Session.make({ host: "127.0.0.1", port: 0 })
    // The raw peer asks for pieces nobody offered it: served as usual, not super-seeded.
    const swarm = yield* session.add({ metainfo: meta, storage, have, initialSeeding: false, ...options })
    return { data, meta, port: session.port, swarm }
  })

interface Peer {
  readonly socket: Net.Socket
  /** Resolves with the `reqq` of the seeder's extension handshake. */
  readonly reqq: Promise<number | undefined>
  readonly unchoked: Promise<void>
  /** Resolves once `count` pieces or rejects have arrived. */
  readonly answered: (count: number) => Promise<void>
  readonly pieces: Map<string, Uint8Array>
  readonly rejected: Array<string>
}

/** A raw peer (fast + extension bits) that handshakes, says it is interested and records answers. */
const rawPeer = (port: number, infoHash: Uint8Array): Effect.Effect<Peer, never, Scope.Scope> =>
  Effect.acquireRelease(
    Effect.sync(() => {
      const pieces = new Map<string, Uint8Array>()
      const rejected: Array<string> = []
      let reqq: (n: number | undefined) => void = () => {}
      let unchoked: () => void = () => {}
      const waiting: Array<{ count: number; resolve: () => void }> = []
      const check = () => {
        for (const w of waiting.splice(0))
          if (pieces.size + rejected.length >= w.count) w.resolve()
          else waiting.push(w)
      }
      const parser = new Wire.FrameParser(
        {
          onMessage: (m) => {
            if (m._tag === "Extended" && m.extendedId === 0) {
              const hs = Wire.decodeExtensionHandshake(m.payload)
              reqq(Either.isRight(hs) ? hs.right.reqq : undefined)
            } else if (m._tag === "Unchoke") unchoked()
            else if (m._tag === "Piece") pieces.set(`${m.index}:${m.begin}`, Uint8Array.from(m.block))
            else if (m._tag === "RejectRequest") rejected.push(`${m.index}:${m.begin}`)
            check()
          }
        },
        { handshake: true }
      )
      const socket = Net.connect({ host: "127.0.0.1", port })
      socket.on("data", (chunk) => {
        const error = parser.feed(chunk)
        if (error !== undefined) socket.destroy(new Error(error.message))
      })
      socket.on("error", () => {})
      socket.write(
        Wire.encodeHandshake({ infoHash, peerId: Session.makePeerId(), fast: true, extensions: true })
      )
      socket.write(Wire.encodeExtensionHandshake({ m: {}, v: "reqq test" }))
      socket.write(Wire.encode({ _tag: "Interested" }))
      return {
        socket,
        reqq: new Promise<number | undefined>((resolve) => (reqq = resolve)),
        unchoked: new Promise<void>((resolve) => (unchoked = resolve)),
        answered: (count: number) =>
          new Promise<void>((resolve) => {
            waiting.push({ count, resolve })
            check()
          }),
        pieces,
        rejected
      } satisfies Peer
    }),
    (peer) => Effect.sync(() => peer.socket.destroy())
  )

describe("request queue", () => {
  it.live(
    "we advertise reqq 2000 by default and serve 1000 requests outstanding at once, every one",
    () =>
      Effect.gen(function* () {
        // 1000 blocks = 16000 KiB asked for at once, against a 4 MiB pool.
        const count = 1000
        const { data, meta, port, swarm } = yield* seeder(count * BLOCK)
        const peer = yield* rawPeer(port, meta.infoHash)
        const reqq = yield* Effect.promise(() => peer.reqq)
        assert.strictEqual(reqq, 2000)
        yield* Effect.promise(() => peer.unchoked)
        const requests: Array<Uint8Array> = []
        for (let i = 0; i < count; i++) {
          const at = i * BLOCK
          requests.push(Wire.encodeRequest(Math.floor(at / PIECE), at % PIECE, BLOCK))
        }
        peer.socket.write(Buffer.concat(requests))
        yield* Effect.promise(() => peer.answered(count)).pipe(Effect.timeout("60 seconds"))
        assert.deepStrictEqual(peer.rejected, [])
        assert.strictEqual(peer.pieces.size, count)
        for (let i = 0; i < count; i++) {
          const at = i * BLOCK
          const got = peer.pieces.get(`${Math.floor(at / PIECE)}:${at % PIECE}`)
          assert.isDefined(got, `block ${i} not served`)
          assert.strictEqual(Buffer.compare(got!, data.subarray(at, at + BLOCK)), 0, `block ${i} differs`)
        }
        assert.strictEqual(swarm.unsafeStatus().uploaded, count * BLOCK)
        const pool = yield* BufferPool.BufferPool
        assert.isAtMost(pool.unsafeStats().peak, pool.unsafeStats().hardLimitBlocks)
      }).pipe(Effect.scoped, Effect.provide(env)),
    90_000
  )

  it.live(
    "a queue set smaller is what we advertise, and requests past it are rejected, not queued",
    () =>
      Effect.gen(function* () {
        const depth = 40
        const { meta, port } = yield* seeder(2 * depth * BLOCK, { requestQueue: depth })
        const peer = yield* rawPeer(port, meta.infoHash)
        assert.strictEqual(yield* Effect.promise(() => peer.reqq), depth)
        yield* Effect.promise(() => peer.unchoked)
        // Twice the depth in one 1360-byte write, parsed in one read before any is served: the
        // second half does not fit the queue.
        const requests: Array<Uint8Array> = []
        for (let i = 0; i < 2 * depth; i++) {
          const at = i * BLOCK
          requests.push(Wire.encodeRequest(Math.floor(at / PIECE), at % PIECE, BLOCK))
        }
        peer.socket.write(Buffer.concat(requests))
        yield* Effect.promise(() => peer.answered(2 * depth)).pipe(Effect.timeout("60 seconds"))
        assert.strictEqual(peer.pieces.size, depth)
        assert.strictEqual(peer.rejected.length, depth)
      }).pipe(Effect.scoped, Effect.provide(env)),
    90_000
  )

  it("keeps QUEUE_SECONDS of each peer's measured rate requested, at least MIN_QUEUE (a seed SEED_QUEUE), at most the option", () => {
    const peer = (downloaded: number, isSeed = false) => ({
      downloaded,
      downloadedAtSample: 0,
      rate: 0,
      requestDepth: 0,
      isSeed
    })
    // A LAN peer's share of a 50 Mbit/s link, a slow peer, a fast one, one silent since its last second.
    const lan = peer(800 * 1024)
    const slow = peer(10 * 1024)
    const fast = peer(100 * 1024 * 1024)
    const quiet = {
      downloaded: 5 * BLOCK,
      downloadedAtSample: 5 * BLOCK,
      rate: 64 * BLOCK,
      requestDepth: 0,
      isSeed: false
    }
    // A seeder whose link the other targets took this second, and one on a fast link.
    const sharedSeed = peer(10 * 1024, true)
    const fastSeed = peer(100 * 1024 * 1024, true)
    sampleRates({
      options: { downloadQueue: 256 },
      connections: [lan, slow, fast, quiet, sharedSeed, fastSeed]
    })
    assert.strictEqual(lan.requestDepth, (800 / 16) * QUEUE_SECONDS)
    assert.strictEqual(slow.requestDepth, MIN_QUEUE)
    assert.strictEqual(fast.requestDepth, 256)
    // The rate halves at most per second: a peer between two blocks keeps its queue.
    assert.strictEqual(quiet.rate, 32 * BLOCK)
    assert.strictEqual(quiet.requestDepth, 32 * QUEUE_SECONDS)
    assert.strictEqual(lan.downloadedAtSample, 800 * 1024)
    assert.strictEqual(sharedSeed.requestDepth, SEED_QUEUE)
    assert.strictEqual(fastSeed.requestDepth, 256)
    // Never past the option, a seed's floor included.
    const small = peer(10 * 1024, true)
    sampleRates({ options: { downloadQueue: 64 }, connections: [small] })
    assert.strictEqual(small.requestDepth, 64)
  })
})
