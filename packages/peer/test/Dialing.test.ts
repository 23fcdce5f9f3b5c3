/**
 * Sessions on loopback that must find each other: a `--peer` that is not listening yet, a seeder
 * restarted on its port mid-download, and a target that learns of another only through PEX.
 */
import * as Net from "node:net"
import { describe, expect, it } from "@effect/vitest"
import { DiskIo } from "@ezio/disk-io"
import { Session } from "@ezio/peer"
import { BufferPool } from "@ezio/pool"
import { Bitfield, Hasher, Layout, Storage } from "@ezio/storage"
import { Metainfo } from "@ezio/torrent"
import { Effect, Either, Exit, Layer, Scope } from "effect"
import { makeTorrent, random } from "./torrentSupport.js"

const full = (meta: Metainfo.Metainfo) => {
  const have = Bitfield.make(meta.pieceCount)
  for (let i = 0; i < meta.pieceCount; i++) Bitfield.set(have, i)
  return have
}

const env = DiskIo.layer().pipe(
  Layer.provideMerge(Hasher.layer({ threads: 2 })),
  Layer.provideMerge(BufferPool.layer({ capacity: 32 * 1024 * 1024 }))
)

/** A port nobody listens on (as far as the kernel knows right now). */
const freePort = Effect.async<number>((resume) => {
  const server = Net.createServer()
  server.listen(0, "127.0.0.1", () => {
    const port = (server.address() as Net.AddressInfo).port
    server.close(() => resume(Effect.succeed(port)))
  })
})

/** A seeding session on `port` in `scope`. */
const seeder = (
  meta: Metainfo.Metainfo,
  data: Uint8Array,
  port: number,
  options: Partial<Session.SwarmOptions> = {}
) =>
  Effect.gen(function* () {
    const layout = Either.getOrThrow(Layout.fromMetainfo(meta))
    const session = yield* Session.make({ host: "127.0.0.1", port })
    const swarm = yield* session.add({
      metainfo: meta,
      storage: yield* Storage.makeMemory({ layout, bytes: data }),
      have: full(meta),
      ...options
    })
    return { session, swarm }
  })

const leecher = (meta: Metainfo.Metainfo, listen = false) =>
  Effect.gen(function* () {
    const layout = Either.getOrThrow(Layout.fromMetainfo(meta))
    const session = yield* Session.make({ host: "127.0.0.1", port: 0, listen })
    const storage = yield* Storage.makeMemory({ layout })
    const swarm = yield* session.add({ metainfo: meta, storage })
    return { session, swarm, storage }
  })

/** Polls `f` every 50 ms until it holds. */
const waitFor = (f: () => boolean): Effect.Effect<void> =>
  Effect.suspend(() => (f() ? Effect.void : Effect.zipRight(Effect.sleep("50 millis"), waitFor(f))))

const sameBytes = (storage: { readonly bytes: Uint8Array }, data: Uint8Array, swarm: Session.Swarm) =>
  Effect.gen(function* () {
    yield* DiskIo.DiskIo.pipe(Effect.flatMap((disk) => disk.flush(swarm.disk)))
    expect(Buffer.compare(storage.bytes, data)).toBe(0)
  })

describe("dialing", () => {
  it.live(
    "a peer that is not listening yet is dialled again until it is: the download completes",
    () =>
      Effect.gen(function* () {
        const data = random(2 * 1024 * 1024 + 777)
        const meta = makeTorrent(data, 64 * 1024)
        const port = yield* freePort
        const target = yield* leecher(meta)
        yield* target.swarm.connect("127.0.0.1", port)
        // Refused for 3 s (dials at 0 and 1 s fail; 3 s races the listen; 7 s at the latest).
        yield* Effect.sleep("3 seconds")
        expect(target.swarm.unsafeStatus().peers).toBe(0)
        yield* seeder(meta, data, port)
        yield* target.swarm.complete.pipe(Effect.timeout("30 seconds"))
        yield* sameBytes(target.storage, data, target.swarm)
      }).pipe(Effect.scoped, Effect.provide(env)),
    60_000
  )

  it.live(
    "a seeder restarted on the same port mid-download: the target reconnects and completes",
    () =>
      Effect.gen(function* () {
        const data = random(4 * 1024 * 1024)
        const meta = makeTorrent(data, 64 * 1024)
        const port = yield* freePort
        const first = yield* Scope.make()
        // Slow enough that the restart lands mid-download.
        const before = yield* seeder(meta, data, port, { uploadRateLimit: 512 * 1024 }).pipe(
          Scope.extend(first)
        )
        const target = yield* leecher(meta)
        yield* target.swarm.connect("127.0.0.1", port)
        yield* waitFor(() => target.swarm.unsafeStatus().downloaded >= 256 * 1024).pipe(
          Effect.timeout("30 seconds")
        )
        yield* Scope.close(first, Exit.void)
        expect(before.swarm.unsafeStatus().uploaded).toBeLessThan(data.length)
        yield* waitFor(() => target.swarm.unsafeStatus().peers === 0).pipe(Effect.timeout("10 seconds"))
        expect(target.swarm.unsafeStatus().complete).toBe(false)
        const after = yield* seeder(meta, data, port)
        yield* target.swarm.complete.pipe(Effect.timeout("30 seconds"))
        expect(after.swarm.unsafeStatus().uploaded).toBeGreaterThan(0)
        yield* sameBytes(target.storage, data, target.swarm)
      }).pipe(Effect.scoped, Effect.provide(env)),
    60_000
  )

  it.live(
    "PEX: B and C, each told only of A, learn of each other from A and trade pieces",
    () =>
      Effect.gen(function* () {
        const data = random(4 * 1024 * 1024)
        const meta = makeTorrent(data, 64 * 1024)
        // A seeds slowly, so B and C are still downloading when A's first PEX message arrives.
        const a = yield* seeder(meta, data, 0, { uploadRateLimit: 512 * 1024 })
        const b = yield* leecher(meta, true)
        const c = yield* leecher(meta, true)
        yield* b.swarm.connect("127.0.0.1", a.session.port)
        yield* c.swarm.connect("127.0.0.1", a.session.port)
        yield* waitFor(() => b.swarm.unsafeStatus().peers === 2 && c.swarm.unsafeStatus().peers === 2).pipe(
          Effect.timeout("20 seconds")
        )
        expect(a.swarm.unsafeStatus().peers).toBe(2)
        yield* Effect.all([b.swarm.complete, c.swarm.complete]).pipe(Effect.timeout("40 seconds"))
        // B and C served each other: A alone did not upload every byte twice.
        expect(b.swarm.unsafeStatus().uploaded + c.swarm.unsafeStatus().uploaded).toBeGreaterThan(0)
        yield* sameBytes(b.storage, data, b.swarm)
        yield* sameBytes(c.storage, data, c.swarm)
      }).pipe(Effect.scoped, Effect.provide(env)),
    90_000
  )
})
