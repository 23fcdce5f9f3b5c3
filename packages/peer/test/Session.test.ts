import { describe, expect, it } from "@effect/vitest"
import { DiskIo } from "@ezio/disk-io"
import { Session } from "@ezio/peer"
import { BufferPool } from "@ezio/pool"
import { Bitfield, Hasher, Layout, Storage } from "@ezio/storage"
import { Metainfo } from "@ezio/torrent"
import { Chunk, ConfigProvider, Effect, Either, Fiber, Layer, Schedule, Stream, TestClock } from "effect"
import * as RateLimiter from "../src/internal/rateLimiter.js"
import { makeTorrent, random } from "./torrentSupport.js"

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
        const verified = yield* Effect.fork(Stream.runCollect(leech.pieces))
        yield* Effect.yieldNow()
        yield* leech.connect("127.0.0.1", seeder.port)
        yield* leech.complete.pipe(Effect.timeout("30 seconds"))
        // The stream of verified pieces saw each piece once and ended with the download.
        const pieces = Chunk.toReadonlyArray(yield* Fiber.join(verified).pipe(Effect.timeout("5 seconds")))
        expect([...pieces].sort((x, y) => x - y)).toEqual(
          Array.from({ length: meta.pieceCount }, (_, i) => i)
        )
        expect(Chunk.size(yield* Stream.runCollect(seed.pieces))).toBe(0)
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

  it.live(
    "an upload rate limit holds the swarm's upload to its rate; one upload slot serves leechers in turn",
    () =>
      Effect.gen(function* () {
        const data = random(3 * 1024 * 1024)
        const meta = makeTorrent(data, 64 * 1024)
        const layout = Either.getOrThrow(Layout.fromMetainfo(meta))
        const seeder = yield* Session.make({ host: "127.0.0.1", port: 0 })
        const seed = yield* seeder.add({
          metainfo: meta,
          storage: yield* Storage.makeMemory({ layout, bytes: data }),
          have: full(meta),
          uploadRateLimit: 2 * 1024 * 1024,
          uploadSlots: 1
        })
        const leechers: Array<{ swarm: Session.Swarm; storage: { readonly bytes: Uint8Array } }> = []
        for (let i = 0; i < 2; i++) {
          const session = yield* Session.make({ host: "127.0.0.1", port: 0, listen: false })
          const storage = yield* Storage.makeMemory({ layout })
          const swarm = yield* session.add({ metainfo: meta, storage })
          yield* swarm.connect("127.0.0.1", seeder.port)
          leechers.push({ swarm, storage })
        }
        const started = Date.now()
        // While the first leecher holds the only slot, the other gets nothing: look as soon as one
        // has bytes (polled, not a fixed sleep, so a loaded machine cannot make it look too early).
        const downloaded = () => leechers.map((l) => l.swarm.unsafeStatus().downloaded).sort((a, b) => a - b)
        yield* Effect.sync(downloaded).pipe(
          Effect.repeat({ until: (d) => d[1]! > 0, schedule: Schedule.spaced("10 millis") }),
          Effect.timeout("20 seconds")
        )
        const early = downloaded()
        expect(early[0]).toBe(0)
        expect(early[1]).toBeGreaterThan(0)
        for (const l of leechers) yield* l.swarm.complete.pipe(Effect.timeout("30 seconds"))
        const seconds = (Date.now() - started) / 1000
        // 6 MiB at 2 MiB/s (a bucket of one second's worth to start): at least about 2.5 s.
        expect(seconds).toBeGreaterThan(2.4)
        for (const l of leechers) expect(Buffer.compare(l.storage.bytes, data)).toBe(0)
        expect(seed.unsafeStatus().uploaded).toBeGreaterThanOrEqual(2 * data.length)
      }).pipe(Effect.scoped, Effect.provide(env(16 * 1024 * 1024))),
    60_000
  )
})

describe("Session options", () => {
  it.live("rejects options out of range, naming the option, its value and the rule", () =>
    Effect.gen(function* () {
      const port = yield* Effect.flip(Session.make({ port: 70_000 }))
      expect(port._tag).toBe("InvalidSessionOptions")
      expect(port.message).toBe("Session.make: option port = 70000 must be an integer in [0, 65535]")
      const session = yield* Session.make({ listen: false })
      const meta = makeTorrent(random(100_000), 16 * 1024)
      const storage = yield* Storage.makeMemory({ layout: Either.getOrThrow(Layout.fromMetainfo(meta)) })
      const peers = yield* Effect.flip(session.add({ metainfo: meta, storage, maxPeers: 0 }))
      expect(peers.message).toBe("Session.add: option maxPeers = 0 must be a whole number >= 1")
      const have = yield* Effect.flip(session.add({ metainfo: meta, storage, have: Bitfield.make(3) }))
      expect(have._tag === "InvalidSessionOptions" && have.option).toBe("have")
      const slow = yield* Effect.flip(
        session.add({ metainfo: meta, storage, slowStart: { initialRate: 1000, period: "0 seconds" } })
      )
      expect(slow._tag === "InvalidSessionOptions" && slow.option).toBe("slowStart.period")
    }).pipe(Effect.scoped, Effect.provide(env(1024 * 1024)))
  )

  it.live("refuses a pool whose blocks are not 16 KiB, saying so", () =>
    Effect.gen(function* () {
      const error = yield* Effect.flip(Session.make({ listen: false }))
      expect(error._tag).toBe("IncompatiblePool")
      expect(error.message).toContain("4096-byte blocks; a session needs blockSize 16384")
    }).pipe(
      Effect.scoped,
      Effect.provide(
        DiskIo.layer().pipe(
          Layer.provideMerge(Hasher.layer({ threads: 1 })),
          Layer.provideMerge(BufferPool.layer({ capacity: 1024 * 1024, blockSize: 4096 }))
        )
      )
    )
  )

  it.live("layerConfig reads host, port and listen under `session`", () =>
    Effect.gen(function* () {
      const session = yield* Session.Session
      expect(session.port).toBeGreaterThan(0)
    }).pipe(
      Effect.provide(Session.layerConfig()),
      Effect.provide(env(1024 * 1024)),
      Effect.withConfigProvider(
        ConfigProvider.fromMap(
          new Map([
            ["session.host", "127.0.0.1"],
            ["session.port", "0"]
          ])
        )
      )
    )
  )
})

describe("RateLimiter (slow start)", () => {
  it.scoped("ramps from the initial rate to the limit over the period, doubling each tenth", () =>
    Effect.gen(function* () {
      yield* TestClock.adjust(1_000_000)
      const limiter = yield* RateLimiter.make(0, { initialRate: 1000, periodMs: 10_000 })
      expect(limiter.rate()).toBe(1000)
      yield* TestClock.adjust(1000)
      expect(limiter.rate()).toBeCloseTo(2000)
      yield* TestClock.adjust(4000)
      expect(limiter.rate()).toBeCloseTo(32_000)
      yield* TestClock.adjust(5000)
      expect(limiter.rate()).toBe(Infinity)
      const capped = yield* RateLimiter.make(5000, { initialRate: 1000, periodMs: 10_000 })
      yield* TestClock.adjust(9000)
      expect(capped.rate()).toBe(5000)
      // Tokens: a first request waits until the bucket has filled.
      const bucket = yield* RateLimiter.make(1000, undefined)
      expect(bucket.take(500)).toBeGreaterThan(0)
      yield* TestClock.adjust(600)
      expect(bucket.take(500)).toBe(0)
    })
  )

  it.scoped("wakes every waiting peer once, when the Clock has passed the delay", () =>
    Effect.gen(function* () {
      const limiter = yield* RateLimiter.make(1000, undefined)
      const woken: Array<string> = []
      const delay = limiter.take(500)
      expect(delay).toBe(500)
      limiter.wake(delay, () => woken.push("a"))
      limiter.wake(delay, () => woken.push("b"))
      yield* TestClock.adjust(499)
      expect(woken).toEqual([])
      yield* TestClock.adjust(1)
      expect(woken).toEqual(["a", "b"])
      expect(limiter.take(500)).toBe(0)
    })
  )
})
