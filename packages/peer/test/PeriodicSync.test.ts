import * as NCrypto from "node:crypto"
import { assert, describe, it } from "@effect/vitest"
import { DiskIo } from "@ezio/disk-io"
import { Session } from "@ezio/peer"
import { BufferPool } from "@ezio/pool"
import { Bitfield, Hasher, Layout, Storage } from "@ezio/storage"
import { Effect, Either, Layer, Schedule } from "effect"
import { PeriodicSync } from "../src/internal/periodicSync.js"
import { makeTorrent } from "./torrentSupport.js"

describe("PeriodicSync", () => {
  it("is due after `bytes` verified or `intervalMs` after the first unsynced piece, one at a time", () => {
    const sync = new PeriodicSync({ bytes: 100, intervalMs: 1_000 })
    assert.isFalse(sync.due(5_000), "nothing verified: nothing to sync")
    sync.verified(60, 0)
    assert.isFalse(sync.due(10))
    sync.verified(60, 20)
    assert.isTrue(sync.due(20), "120 of 100 bytes")
    sync.start()
    sync.verified(10, 500)
    assert.isFalse(sync.due(2_000), "one sync at a time")
    sync.done()
    assert.isTrue(sync.due(1_500), "the piece verified at 500 waited its 1 000 ms")
    assert.isFalse(new PeriodicSync({ bytes: 100, intervalMs: 1_000 }).due(1_499))
    sync.start()
    sync.done()
    assert.isFalse(sync.due(10_000), "the sync covered it")
    assert.strictEqual(sync.started, 2)
  })

  it.live("a download syncs what it verified before it completes, one sync job at a time", () =>
    Effect.gen(function* () {
      const data = new Uint8Array(NCrypto.randomBytes(8 * 1024 * 1024))
      const meta = makeTorrent(data, 256 * 1024)
      const layout = Either.getOrThrow(Layout.fromMetainfo(meta))
      const have = Bitfield.make(meta.pieceCount)
      for (let i = 0; i < meta.pieceCount; i++) Bitfield.set(have, i)
      const seeding = yield* Session.make({ host: "127.0.0.1", port: 0 })
      yield* seeding.add({
        metainfo: meta,
        storage: yield* Storage.makeMemory({ layout, bytes: data }),
        have
      })
      const session = yield* Session.make({ host: "127.0.0.1", port: 0, listen: false })
      const storage = yield* Storage.makeMemory({ layout })
      const swarm = yield* session.add({ metainfo: meta, storage, periodicSync: { bytes: 1024 * 1024 } })
      const disk = yield* DiskIo.DiskIo
      const before = disk.unsafeStats().syncs
      yield* swarm.connect("127.0.0.1", seeding.port)
      yield* swarm.complete.pipe(Effect.timeout("60 seconds"))
      // The completion's sync, and at least one before it (a periodic one may still be ending).
      const synced = Effect.sync(() => disk.unsafeStats().syncs - before)
      yield* Effect.repeat(synced, { schedule: Schedule.spaced("20 millis"), until: (n) => n >= 2 }).pipe(
        Effect.timeout("10 seconds")
      )
      const syncs = yield* synced
      assert.isAtLeast(syncs, 2)
      assert.isAtMost(syncs, meta.pieceCount / 4 + 1, "more syncs than 1 MiB steps")
      assert.strictEqual(Buffer.compare(storage.bytes, data), 0)
    }).pipe(
      Effect.scoped,
      Effect.provide(
        DiskIo.layer().pipe(
          Layer.provideMerge(Hasher.layer({ threads: 2 })),
          Layer.provideMerge(BufferPool.layer({ capacity: 32 * 1024 * 1024 }))
        )
      )
    )
  )
})
