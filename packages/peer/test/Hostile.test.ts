/**
 * Bad peers against our sessions on 127.0.0.1: a seeder sending bad data (beside a good one, and
 * alone) and a seeder locked out by idle and never-reading peers while a real target downloads.
 */
import * as NCrypto from "node:crypto"
import { assert, describe, it } from "@effect/vitest"
import { DiskIo } from "@ezio/disk-io"
import { Session } from "@ezio/peer"
import { BufferPool } from "@ezio/pool"
import { Bitfield, Hasher, Layout, Storage } from "@ezio/storage"
import { Metainfo } from "@ezio/torrent"
import { Clock, Effect, Either, Fiber, Layer, Ref, Schedule } from "effect"
import * as SmartBan from "../src/internal/smartBan.js"
import { hostilePeers } from "./hostilePeers.js"
import { makeTorrent } from "./torrentSupport.js"

const env = (capacity: number) =>
  DiskIo.layer().pipe(
    Layer.provideMerge(Hasher.layer({ threads: 2 })),
    Layer.provideMerge(BufferPool.layer({ capacity }))
  )

const full = (meta: Metainfo.Metainfo) => {
  const have = Bitfield.make(meta.pieceCount)
  for (let i = 0; i < meta.pieceCount; i++) Bitfield.set(have, i)
  return have
}

const poolIsEmpty = Effect.flatMap(BufferPool.BufferPool, (pool) =>
  Effect.sync(() => assert.strictEqual(pool.unsafeStats().inUse, 0, "blocks still out of the pool"))
)

/** A seeding session claiming every piece of `meta`, serving `bytes` (right or wrong). */
const seeder = (meta: Metainfo.Metainfo, bytes: Uint8Array, options: Partial<Session.SwarmOptions> = {}) =>
  Effect.gen(function* () {
    const layout = Either.getOrThrow(Layout.fromMetainfo(meta))
    const session = yield* Session.make({ host: "127.0.0.1", port: 0 })
    const swarm = yield* session.add({
      metainfo: meta,
      storage: yield* Storage.makeMemory({ layout, bytes }),
      have: full(meta),
      ...options
    })
    return { port: session.port, swarm }
  })

const leecher = (meta: Metainfo.Metainfo) =>
  Effect.gen(function* () {
    const layout = Either.getOrThrow(Layout.fromMetainfo(meta))
    const session = yield* Session.make({ host: "127.0.0.1", port: 0, listen: false })
    const storage = yield* Storage.makeMemory({ layout })
    const swarm = yield* session.add({ metainfo: meta, storage })
    return { swarm, storage }
  })

const PIECE = 256 * 1024
/** Failed pieces wholly from one peer before it is banned (smartBan.ts). */
const STRIKES = SmartBan.defaults.strikes

/** Polls a swarm's status until `done` holds (failing after 60 s). */
const untilStatus = (swarm: Session.Swarm, done: (s: Session.Status) => boolean) =>
  Effect.repeat(swarm.status, { schedule: Schedule.spaced("100 millis"), until: done }).pipe(
    Effect.zipRight(swarm.status),
    Effect.timeout("60 seconds")
  )

/** Until interrupted: keeps in `longest` the most ms `swarm` went without a new verified piece. */
const watchProgress = (swarm: Session.Swarm, longest: Ref.Ref<number>) =>
  Effect.gen(function* () {
    let have = -1
    let since = 0
    const sample = Effect.gen(function* () {
      const now = yield* Clock.currentTimeMillis
      const current = swarm.unsafeStatus().have
      if (current !== have) {
        have = current
        since = now
      }
      yield* Ref.update(longest, (l) => Math.max(l, now - since))
    })
    return yield* Effect.repeat(sample, Schedule.spaced("100 millis"))
  })

/** Every byte of every block flipped: each block a bad-data seeder sends is wrong. */
const spoiled = (data: Uint8Array) => data.map((b) => b ^ 0x5a)

describe("bad and hostile peers", () => {
  it.live(
    "beside a good seeder, a bad-data seeder is banned and the download completes byte for byte",
    () =>
      Effect.gen(function* () {
        const data = new Uint8Array(NCrypto.randomBytes(16 * 1024 * 1024))
        const meta = makeTorrent(data, PIECE)
        const good = yield* seeder(meta, data)
        const bad = yield* seeder(meta, spoiled(data))
        const { storage, swarm } = yield* leecher(meta)
        yield* swarm.connect("127.0.0.1", bad.port)
        yield* swarm.connect("127.0.0.1", good.port)
        const longestGap = yield* Ref.make(0)
        const watch = yield* Effect.fork(watchProgress(swarm, longestGap))
        yield* swarm.complete.pipe(Effect.timeout("90 seconds"))
        // It used to sit for a minute at 62 of 64 pieces (until a keep-alive woke the good
        // seeder's connection): a piece hashing when the bad one was banned failed "wholly from
        // the good seeder", which was then held back from it. On a loaded machine a download
        // still pauses, but not for this long.
        const longest = yield* Fiber.interrupt(watch).pipe(Effect.zipRight(Ref.get(longestGap)))
        assert.isBelow(longest, 20_000, `${longest} ms without a verified piece`)
        yield* Effect.flatMap(DiskIo.DiskIo, (disk) => disk.flush(swarm.disk))
        assert.strictEqual(Buffer.compare(storage.bytes, data), 0, "downloaded bytes differ")
        const status = swarm.unsafeStatus()
        assert.isTrue(
          status.banned.some((b) => b.startsWith(`127.0.0.1:${bad.port}:`)),
          `bad seeder not banned: ${JSON.stringify(status.banned)}`
        )
        assert.isFalse(
          status.banned.some((b) => b.startsWith(`127.0.0.1:${good.port}:`)),
          "good seeder banned"
        )
        // No loop: each piece fails about once (what was received before the ban but not yet
        // hashed can still fail after it); the rest is fetched again from the good one.
        assert.isAtMost(status.hashFailures, meta.pieceCount + STRIKES)
        assert.isAbove(status.hashFailures, 0)
        // Banned for the session: not dialled again.
        yield* swarm.connect("127.0.0.1", bad.port)
        yield* Effect.sleep("300 millis")
        assert.strictEqual(bad.swarm.unsafeStatus().peers, 0, "banned seeder still connected")
      }).pipe(Effect.scoped, Effect.zipRight(poolIsEmpty), Effect.provide(env(64 * 1024 * 1024))),
    120_000
  )

  it.live(
    "with only a bad-data seeder: few hash failures, no busy loop, and the status says it was banned",
    () =>
      Effect.gen(function* () {
        const data = new Uint8Array(NCrypto.randomBytes(16 * 1024 * 1024))
        const meta = makeTorrent(data, PIECE)
        const bad = yield* seeder(meta, spoiled(data))
        const { swarm } = yield* leecher(meta)
        yield* swarm.connect("127.0.0.1", bad.port)
        // Wait for the ban (under load it can take a while), then watch for a few seconds more.
        const banned = yield* untilStatus(swarm, (s) => s.banned.length > 0)
        const failuresAtBan = banned.hashFailures
        // What the bad seeder wrote before it saw the connection close was asked for before the
        // ban (it can be megabytes on a busy machine): count from its side's close.
        const uploadedAtBan = (yield* untilStatus(bad.swarm, (s) => s.peers === 0)).uploaded
        yield* Effect.sleep("3 seconds")
        const status = swarm.unsafeStatus()
        // No loop (the bug was 22,630 failures for 256 pieces): each piece fails about once. What
        // was received before the ban but not yet hashed can still fail after it, so the bound is
        // the piece count, not the requests in flight (hashing may lag receiving on a busy machine).
        assert.isAtMost(status.hashFailures, meta.pieceCount + STRIKES, "hash failures keep growing")
        assert.isAtMost(status.hashFailures - failuresAtBan, meta.pieceCount)
        assert.strictEqual(status.have, 0)
        assert.isFalse(status.complete)
        assert.strictEqual(status.peers, 0)
        assert.match(status.banned[0]!, new RegExp(`^127\\.0\\.0\\.1:${bad.port}: .*hash check`))
        // The bad seeder is not asked for anything more.
        assert.isAtMost(bad.swarm.unsafeStatus().uploaded - uploadedAtBan, 0)
        // Nobody left to download from: the swarm sits still.
        const before = swarm.unsafeStatus().downloaded
        yield* Effect.sleep("1 second")
        assert.strictEqual(swarm.unsafeStatus().downloaded, before)
      }).pipe(Effect.scoped, Effect.zipRight(poolIsEmpty), Effect.provide(env(64 * 1024 * 1024))),
    120_000
  )

  it.live(
    "200 idle handshaken peers and 60 that never read do not keep a real download from the seeder",
    () =>
      Effect.gen(function* () {
        const data = new Uint8Array(NCrypto.randomBytes(16 * 1024 * 1024))
        const meta = makeTorrent(data, 256 * 1024)
        const seed = yield* seeder(meta, data)
        const pool = yield* BufferPool.BufferPool
        const hostile = hostilePeers(seed.port, meta)
        const stalled = yield* hostile.neverRead(60, 500)
        yield* Effect.addFinalizer(() => Effect.sync(stalled.stop))
        const idle = yield* hostile.idle(200)
        yield* Effect.addFinalizer(() => Effect.sync(() => idle.forEach((s) => s.destroy())))
        yield* untilStatus(seed.swarm, (s) => s.peers >= 200)
        const { storage, swarm } = yield* leecher(meta)
        // A target retries the seeder as its tracker would tell it again (dialling is a no-op
        // while connected).
        yield* Effect.forkScoped(
          Effect.repeat(swarm.connect("127.0.0.1", seed.port), Schedule.spaced("1 second"))
        )
        yield* swarm.complete.pipe(Effect.timeout("90 seconds"))
        yield* Effect.flatMap(DiskIo.DiskIo, (disk) => disk.flush(swarm.disk))
        assert.strictEqual(Buffer.compare(storage.bytes, data), 0)
        assert.isAtMost(seed.swarm.unsafeStatus().peers, 200)
        assert.isAtMost(pool.unsafeStats().peak, pool.unsafeStats().hardLimitBlocks)
      }).pipe(Effect.scoped, Effect.zipRight(poolIsEmpty), Effect.provide(env(64 * 1024 * 1024))),
    150_000
  )
})
