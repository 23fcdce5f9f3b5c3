import { describe, expect, it } from "@effect/vitest"
import { DiskIo } from "@ezio/disk-io"
import { Session } from "@ezio/peer"
import { BufferPool } from "@ezio/pool"
import { Bitfield, Hasher, Layout, Storage } from "@ezio/storage"
import { Metainfo } from "@ezio/torrent"
import { Effect, Either, Layer } from "effect"
import * as NCrypto from "node:crypto"

const random = (n: number) => new Uint8Array(NCrypto.randomBytes(n))

export const makeTorrent = (data: Uint8Array, pieceLength: number, name = "disk.img") => {
  const pieces = new Uint8Array(Math.ceil(data.length / pieceLength) * 20)
  for (let i = 0; i * pieceLength < data.length; i++)
    pieces.set(
      NCrypto.createHash("sha1")
        .update(data.subarray(i * pieceLength, (i + 1) * pieceLength))
        .digest(),
      i * 20
    )
  return Either.getOrThrow(
    Metainfo.make({ name, pieceLength, pieces, files: [{ path: [name], length: data.length }], single: true })
  )
}

const full = (meta: Metainfo.Metainfo) => {
  const have = Bitfield.make(meta.pieceCount)
  for (let i = 0; i < meta.pieceCount; i++) Bitfield.set(have, i)
  return have
}

const env = (capacity: number) =>
  DiskIo.layer().pipe(
    Layer.provideMerge(Hasher.layer({ threads: 2 })),
    Layer.provideMerge(BufferPool.layer({ capacity }))
  )

describe("Session", () => {
  it.live(
    "downloads a torrent from another session over loopback, byte for byte, and returns every block",
    () =>
      Effect.gen(function* () {
        const data = random(6 * 1024 * 1024 + 5000)
        const meta = makeTorrent(data, 256 * 1024)
        const layout = Either.getOrThrow(Layout.fromMetainfo(meta))
        const seedStorage = yield* Storage.makeMemory({ layout, bytes: data })
        const leechStorage = yield* Storage.makeMemory({ layout })
        const seeder = yield* Session.make({ host: "127.0.0.1", port: 0 })
        const leecher = yield* Session.make({ host: "127.0.0.1", port: 0 })
        const seed = yield* seeder.add({ metainfo: meta, storage: seedStorage, have: full(meta) })
        const leech = yield* leecher.add({ metainfo: meta, storage: leechStorage })
        yield* leech.connect("127.0.0.1", seeder.port)
        yield* leech.complete.pipe(Effect.timeout("30 seconds"))
        yield* DiskIo.DiskIo.pipe(Effect.flatMap((disk) => disk.flush(leech.disk)))
        expect(Buffer.compare(leechStorage.bytes, data)).toBe(0)
        const status = leech.unsafeStatus()
        expect(status.complete).toBe(true)
        expect(status.have).toBe(meta.pieceCount)
        expect(status.hashFailures).toBe(0)
        expect(seed.unsafeStatus().uploaded).toBeGreaterThanOrEqual(data.length)
      }).pipe(
        Effect.scoped,
        Effect.zipRight(
          Effect.flatMap(BufferPool.BufferPool, (pool) =>
            Effect.sync(() => expect(pool.unsafeStats().inUse).toBe(0))
          )
        ),
        Effect.provide(env(32 * 1024 * 1024))
      ),
    60_000
  )
})
