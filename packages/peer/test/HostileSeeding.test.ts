/**
 * A seeder's initial seeding beside peers that never read: what was sent to them must not hold a
 * real (ezio) download back. Every piece has left the seeder once (a first download), then raw
 * peers ask for blocks of most pieces and never read: the kernel's buffers take what the seeder
 * sends them, so from the seeder's side those pieces look on their way to them. A second download
 * used to be refused each such piece (4 s, then 5 s before it asked again) and ran at a quarter
 * of its speed (bench/hostile.ts); it is now served at once, and peers that never read are
 * trickled once they have said nothing for a second.
 */
import * as NCrypto from "node:crypto"
import { assert, describe, it } from "@effect/vitest"
import { DiskIo } from "@ezio/disk-io"
import { Session } from "@ezio/peer"
import { BufferPool } from "@ezio/pool"
import { Bitfield, Hasher, Layout, Storage } from "@ezio/storage"
import type { Metainfo } from "@ezio/torrent"
import { Effect, Either, Layer, Schedule } from "effect"
import { QUIET_MS } from "../src/internal/upload.js"
import { hostilePeers } from "./hostilePeers.js"
import { makeTorrent } from "./torrentSupport.js"

const env = DiskIo.layer().pipe(
  Layer.provideMerge(Hasher.layer({ threads: 2 })),
  Layer.provideMerge(BufferPool.layer({ capacity: 64 * 1024 * 1024 }))
)

const PIECE = 256 * 1024
const NEVER_READ = 8
/** Blocks each never-reading peer asks for: about 80% of the pieces, each once at least. */
const REQUESTS = 100

/** A download of `meta` from `port` into memory, to completion; its copy and final status. */
const download = (meta: Metainfo.Metainfo, port: number) =>
  Effect.gen(function* () {
    const layout = Either.getOrThrow(Layout.fromMetainfo(meta))
    const session = yield* Session.make({ host: "127.0.0.1", port: 0, listen: false })
    const storage = yield* Storage.makeMemory({ layout })
    const swarm = yield* session.add({ metainfo: meta, storage })
    yield* Effect.forkScoped(Effect.repeat(swarm.connect("127.0.0.1", port), Schedule.spaced("1 second")))
    yield* swarm.complete.pipe(Effect.timeout("60 seconds"))
    yield* Effect.flatMap(DiskIo.DiskIo, (disk) => disk.flush(swarm.disk))
    return { bytes: Buffer.from(storage.bytes), status: swarm.unsafeStatus() }
  }).pipe(Effect.scoped)

describe("initial seeding beside peers that never read", () => {
  it.live(
    "a download is served every piece at once, none held for peers that never read",
    () =>
      Effect.gen(function* () {
        const data = new Uint8Array(NCrypto.randomBytes(16 * 1024 * 1024))
        const meta = makeTorrent(data, PIECE)
        const layout = Either.getOrThrow(Layout.fromMetainfo(meta))
        const have = Bitfield.make(meta.pieceCount)
        for (let i = 0; i < meta.pieceCount; i++) Bitfield.set(have, i)
        const session = yield* Session.make({ host: "127.0.0.1", port: 0 })
        const seed = yield* session.add({
          metainfo: meta,
          storage: yield* Storage.makeMemory({ layout, bytes: data }),
          have
        })
        const first = yield* download(meta, session.port)
        assert.strictEqual(Buffer.compare(first.bytes, data), 0)
        assert.strictEqual(seed.unsafeStatus().initialSeeding?.piecesOut, meta.pieceCount)

        const uploadedBefore = seed.unsafeStatus().uploaded
        const hostile = hostilePeers(session.port, meta)
        const stalled = yield* hostile.neverRead(NEVER_READ, REQUESTS)
        yield* Effect.addFinalizer(() => Effect.sync(stalled.stop))
        // Until the seeder has sent them what they asked for (into the kernel's buffers) and they
        // have been silent since for longer than QUIET_MS.
        let last = -1
        yield* Effect.repeat(
          Effect.sync(() => {
            const uploaded = seed.unsafeStatus().uploaded
            const settled = uploaded === last
            last = uploaded
            return settled
          }),
          { schedule: Schedule.spaced(`${QUIET_MS + 500} millis`), until: (settled) => settled }
        ).pipe(Effect.timeout("30 seconds"))
        const sentToThem = seed.unsafeStatus().uploaded - uploadedBefore
        assert.isAtLeast(sentToThem, REQUESTS * 16 * 1024, "the never-reading peers were served")
        assert.strictEqual(seed.unsafeStatus().peers, NEVER_READ)
        const refusedBefore = seed.unsafeStatus().initialSeeding!.refused

        const second = yield* download(meta, session.port)
        assert.strictEqual(Buffer.compare(second.bytes, data), 0)
        // Every piece came from the seeder (nobody else has one), none of it refused or twice.
        assert.strictEqual(second.status.downloaded, meta.totalLength)
        assert.strictEqual(second.status.redundant, 0)
        assert.strictEqual(seed.unsafeStatus().initialSeeding!.refused - refusedBefore, 0, "requests refused")
      }).pipe(Effect.scoped, Effect.provide(env)),
    120_000
  )
})
