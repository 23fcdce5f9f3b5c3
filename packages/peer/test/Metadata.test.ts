/**
 * BEP 9 (ut_metadata): the message codec, serving the info dictionary, and sessions that start
 * from a magnet link and fetch it from our seeder.
 */
import * as Net from "node:net"
import { describe, expect, it } from "@effect/vitest"
import { DiskIo } from "@ezio/disk-io"
import { Session, Wire } from "@ezio/peer"
import { BufferPool } from "@ezio/pool"
import { Bitfield, Hasher, Layout, Storage } from "@ezio/storage"
import { Bencode, Magnet, Metainfo } from "@ezio/torrent"
import { Deferred, Effect, Either, Fiber, Layer } from "effect"
import * as Metadata from "../src/internal/metadata.js"
import { makeTorrent, random } from "./torrentSupport.js"

const env = DiskIo.layer().pipe(
  Layer.provideMerge(Hasher.layer({ threads: 2 })),
  Layer.provideMerge(BufferPool.layer({ capacity: 32 * 1024 * 1024 }))
)

const full = (meta: Metainfo.Metainfo) => {
  const have = Bitfield.make(meta.pieceCount)
  Bitfield.setAll(have)
  return have
}

/** The payload of a frame `encodeMetadataMessage` made (past the length, id and extended id). */
const payloadOf = (frame: Uint8Array) => {
  expect(frame[4]).toBe(Wire.MessageId.Extended)
  return frame.subarray(6)
}

const decoded = (frame: Uint8Array) => Either.getOrThrow(Wire.decodeMetadataMessage(payloadOf(frame)))

describe("ut_metadata codec", () => {
  it("encodes and decodes requests, data and rejects under the receiver's id", () => {
    const request = Wire.encodeMetadataMessage(3, { _tag: "MetadataRequest", piece: 1 })
    expect(request[5]).toBe(3)
    expect(Bencode.toText(payloadOf(request))).toBe("d8:msg_typei0e5:piecei1ee")
    expect(decoded(request)).toEqual({ _tag: "MetadataRequest", piece: 1 })
    const data = random(1000)
    const frame = Wire.encodeMetadataMessage(2, { _tag: "MetadataData", piece: 0, totalSize: 1000, data })
    const message = decoded(frame)
    expect(message._tag).toBe("MetadataData")
    if (message._tag === "MetadataData") {
      expect(message.totalSize).toBe(1000)
      expect(Buffer.compare(message.data, data)).toBe(0)
    }
    const reject = Wire.encodeMetadataMessage(2, { _tag: "MetadataReject", piece: 7 })
    expect(decoded(reject)).toEqual({ _tag: "MetadataReject", piece: 7 })
    expect(Wire.metadataPieces(16384)).toBe(1)
    expect(Wire.metadataPieces(16385)).toBe(2)
  })

  it("refuses what is not a ut_metadata message", () => {
    const bad = [
      Bencode.text("i1e"),
      Bencode.text("d8:msg_typei0ee"),
      Bencode.text("d8:msg_typei0e5:piecei-1ee"),
      Bencode.text("d8:msg_typei1e5:piecei0ee"),
      Bencode.text("d8:msg_typei9e5:piecei0ee"),
      Bencode.text("d8:msg_typei0e5:piecei0eexx"),
      Bencode.text("d8:msg_type")
    ]
    for (const payload of bad) {
      const result = Wire.decodeMetadataMessage(payload)
      expect(Either.isLeft(result) && result.left.reason).toBe("Malformed")
    }
  })

  it("serves 16 KiB pieces of the info dictionary, rejects past the end or when busy", () => {
    const info = random(40_000)
    const request = (piece: number) =>
      payloadOf(Wire.encodeMetadataMessage(2, { _tag: "MetadataRequest", piece }))
    const sizes = [0, 1, 2].map((piece) => {
      const m = decoded(Metadata.answer(info, 5, request(piece), false)!)
      expect(m._tag).toBe("MetadataData")
      return m._tag === "MetadataData" ? m : undefined
    })
    expect(sizes.map((m) => m?.data.length)).toEqual([16384, 16384, 40_000 - 32768])
    expect(Buffer.compare(Buffer.concat(sizes.map((m) => m!.data)), info)).toBe(0)
    expect(sizes.every((m) => m?.totalSize === 40_000)).toBe(true)
    expect(decoded(Metadata.answer(info, 5, request(3), false)!)).toEqual({
      _tag: "MetadataReject",
      piece: 3
    })
    expect(decoded(Metadata.answer(info, 5, request(0), true)!)).toEqual({ _tag: "MetadataReject", piece: 0 })
    expect(decoded(Metadata.answer(undefined, 5, request(0), false)!)._tag).toBe("MetadataReject")
    // A peer that gave ut_metadata no id cannot be answered; data and rejects need no answer.
    expect(Metadata.answer(info, 0, request(0), false)).toBeUndefined()
    const data = Wire.encodeMetadataMessage(2, {
      _tag: "MetadataData",
      piece: 0,
      totalSize: 1,
      data: random(1)
    })
    expect(Metadata.answer(info, 5, payloadOf(data), false)).toBeUndefined()
  })
})

/** A seeder session of `data` (16 KiB pieces, so the info dictionary spans several metadata pieces). */
const seeder = (data: Uint8Array) =>
  Effect.gen(function* () {
    const meta = makeTorrent(data, 16 * 1024)
    const layout = Either.getOrThrow(Layout.fromMetainfo(meta))
    const session = yield* Session.make({ host: "127.0.0.1", port: 0 })
    const swarm = yield* session.add({
      metainfo: meta,
      storage: yield* Storage.makeMemory({ layout, bytes: data }),
      have: full(meta)
    })
    return { meta, layout, session, swarm }
  })

const magnetOf = (meta: Metainfo.Metainfo, peers: ReadonlyArray<string> = []): Magnet.Magnet => ({
  infoHash: meta.infoHash,
  trackers: [],
  peers
})

describe("Session from a magnet link", () => {
  it.live(
    "fetches the metadata from our seeder and downloads byte-identical data over the same connection",
    () =>
      Effect.gen(function* () {
        const data = random(16 * 1024 * 1024 + 777)
        const seed = yield* seeder(data)
        expect(seed.meta.infoBytes.length).toBeGreaterThan(Wire.METADATA_PIECE)
        const leecher = yield* Session.make({ host: "127.0.0.1", port: 0 })
        let storage: (Storage.StorageService & { readonly bytes: Uint8Array }) | undefined
        const swarm = yield* leecher
          .addMagnet({
            magnet: magnetOf(seed.meta, [`127.0.0.1:${seed.session.port}`]),
            storageFor: (metainfo) =>
              Effect.map(
                Storage.makeMemory({ layout: Either.getOrThrow(Layout.fromMetainfo(metainfo)) }),
                (s) => {
                  storage = s
                  return { storage: s }
                }
              )
          })
          .pipe(Effect.timeout("30 seconds"))
        expect(swarm.metainfo.infoHashHex).toBe(seed.meta.infoHashHex)
        expect(Buffer.compare(swarm.metainfo.infoBytes, seed.meta.infoBytes)).toBe(0)
        // The metadata connection became the swarm's: one peer on each side, none redialled.
        expect(swarm.unsafeStatus().peers).toBe(1)
        expect(seed.swarm.unsafeStatus().peers).toBe(1)
        yield* swarm.complete.pipe(Effect.timeout("60 seconds"))
        yield* DiskIo.DiskIo.pipe(Effect.flatMap((disk) => disk.flush(swarm.disk)))
        expect(Buffer.compare(storage!.bytes, data)).toBe(0)
        expect(swarm.unsafeStatus().hashFailures).toBe(0)
      }).pipe(Effect.scoped, Effect.provide(env)),
    120_000
  )

  it.live(
    "takes the metadata from a peer that dials in, drops a peer whose metadata fails the hash check",
    () =>
      Effect.gen(function* () {
        const data = random(4 * 1024 * 1024)
        const seed = yield* seeder(data)
        const size = seed.meta.infoBytes.length
        // A liar: speaks ut_metadata, advertises the right size, sends random bytes.
        const lied = yield* Deferred.make<void>()
        const liarClosed = yield* Deferred.make<void>()
        const liar = Net.createServer((socket) => {
          socket.on("error", () => {})
          socket.on("close", () => Deferred.unsafeDone(liarClosed, Effect.void))
          let handshaken = false
          let pending = Buffer.alloc(0)
          socket.on("data", (chunk: Buffer) => {
            pending = Buffer.concat([pending, chunk])
            if (!handshaken) {
              if (pending.length < Wire.HANDSHAKE_LENGTH) return
              handshaken = true
              pending = pending.subarray(Wire.HANDSHAKE_LENGTH)
              socket.write(
                Wire.encodeHandshake({
                  infoHash: seed.meta.infoHash,
                  peerId: Session.makePeerId(),
                  extensions: true
                })
              )
              socket.write(Wire.encodeExtensionHandshake({ m: { ut_metadata: 9 }, metadataSize: size }))
            }
            while (pending.length >= 4 && pending.length >= 4 + pending.readUInt32BE(0)) {
              const frame = pending.subarray(0, 4 + pending.readUInt32BE(0))
              pending = pending.subarray(frame.length)
              if (frame[4] !== Wire.MessageId.Extended || frame[5] !== 9) continue
              const m = Either.getOrThrow(Wire.decodeMetadataMessage(frame.subarray(6)))
              if (m._tag !== "MetadataRequest") continue
              const length = Math.min(Wire.METADATA_PIECE, size - m.piece * Wire.METADATA_PIECE)
              socket.write(
                Wire.encodeMetadataMessage(2, {
                  _tag: "MetadataData",
                  piece: m.piece,
                  totalSize: size,
                  data: random(length)
                })
              )
              Deferred.unsafeDone(lied, Effect.void)
            }
          })
        })
        yield* Effect.acquireRelease(
          Effect.async<void>((resume) => {
            liar.listen(0, "127.0.0.1", () => resume(Effect.void))
          }),
          () => Effect.sync(() => liar.close())
        )
        const liarPort = (liar.address() as Net.AddressInfo).port
        const leecher = yield* Session.make({ host: "127.0.0.1", port: 0 })
        const fetching = yield* Effect.fork(
          leecher.fetchMetadata({
            magnet: magnetOf(seed.meta),
            peers: [{ host: "127.0.0.1", port: liarPort }]
          })
        )
        yield* Deferred.await(lied).pipe(Effect.timeout("20 seconds"))
        yield* Deferred.await(liarClosed).pipe(Effect.timeout("20 seconds"))
        // Now our seeder dials the magnet's session: its metadata is the one that checks.
        yield* seed.swarm.connect("127.0.0.1", leecher.port)
        const meta = yield* Fiber.join(fetching).pipe(Effect.timeout("30 seconds"))
        expect(Buffer.compare(meta.infoBytes, seed.meta.infoBytes)).toBe(0)
        const storage = yield* Storage.makeMemory({ layout: seed.layout })
        const swarm = yield* leecher.add({ metainfo: meta, storage })
        yield* swarm.complete.pipe(Effect.timeout("60 seconds"))
        yield* DiskIo.DiskIo.pipe(Effect.flatMap((disk) => disk.flush(swarm.disk)))
        expect(Buffer.compare(storage.bytes, data)).toBe(0)
      }).pipe(Effect.scoped, Effect.provide(env)),
    120_000
  )

  it.live(
    "refuses a magnet without a v1 info-hash and metadata above the size limit",
    () =>
      Effect.gen(function* () {
        const session = yield* Session.make({ host: "127.0.0.1", port: 0 })
        const v2 = yield* session
          .fetchMetadata({ magnet: { infoHashV2: random(32), trackers: [], peers: [] } })
          .pipe(Effect.flip)
        expect(v2.reason).toBe("NoV1InfoHash")
        const seed = yield* seeder(random(1024 * 1024))
        const small = yield* Session.make({ host: "127.0.0.1", port: 0 })
        const result = yield* small
          .fetchMetadata({
            magnet: magnetOf(seed.meta, [`127.0.0.1:${seed.session.port}`]),
            maxMetadataSize: 100
          })
          .pipe(Effect.timeout("3 seconds"), Effect.either)
        // Never accepted: the only peer is dropped and the fetch waits for others.
        expect(Either.isLeft(result) && result.left._tag).toBe("TimeoutException")
        expect(seed.swarm.unsafeStatus().peers).toBe(0)
      }).pipe(Effect.scoped, Effect.provide(env)),
    60_000
  )
})
