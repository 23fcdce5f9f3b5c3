/**
 * Ordering and visibility as properties: random interleavings of writes, reads, hashes, flushes,
 * clears and interruptions, over a storage whose calls take random turns, checked against a
 * reference model that is a plain byte array (one copy per version).
 *
 * Linearizability against the model: a write takes effect when `write` returns (the model's new
 * version is installed just before the call); a read or hash must equal the model at some version
 * between its call and its completion; a flush leaves storage equal to the model.
 */
import { assert, describe, it } from "@effect/vitest"
import { BufferPool } from "@ezio/pool"
import { Hasher, Layout } from "@ezio/storage"
import { Deferred, Effect, Exit, Fiber, FastCheck as fc } from "effect"
import { DiskIo } from "../src/index.js"
import { BLOCK, concat, controlled, hex, poolOptions, sha1, sha256, smallLayout } from "./util.js"

const RUNS = Number(process.env.EZIO_DISKIO_PROPERTY_RUNS ?? 200)
const layout = smallLayout
const blocksOf = (piece: number) => Math.ceil(Layout.pieceSize(layout, piece) / BLOCK)

type Op =
  | { readonly _tag: "write"; readonly piece: number; readonly block: number; readonly seed: number }
  | {
      readonly _tag: "read"
      readonly piece: number
      readonly offset: number
      readonly length: number
      readonly interrupt: number
    }
  | { readonly _tag: "hash"; readonly piece: number; readonly v2: boolean; readonly interrupt: number }
  | { readonly _tag: "flush" }
  | { readonly _tag: "clear"; readonly piece: number }
  | { readonly _tag: "pause"; readonly turns: number }

const piece = fc.integer({ min: 0, max: layout.pieceCount - 1 })
// 0 = never interrupted; otherwise interrupted after that many turns.
const interrupt = fc.oneof(
  { weight: 4, arbitrary: fc.constant(0) },
  { weight: 1, arbitrary: fc.integer({ min: 1, max: 6 }) }
)

const op: fc.Arbitrary<Op> = fc.oneof(
  {
    weight: 6,
    arbitrary: piece.chain((p) =>
      fc.record({
        _tag: fc.constant("write" as const),
        piece: fc.constant(p),
        block: fc.integer({ min: 0, max: blocksOf(p) - 1 }),
        seed: fc.integer({ min: 1, max: 255 })
      })
    )
  },
  {
    weight: 5,
    arbitrary: piece.chain((p) => {
      const size = Layout.pieceSize(layout, p)
      return fc.integer({ min: 0, max: size - 1 }).chain((offset) =>
        fc.record({
          _tag: fc.constant("read" as const),
          piece: fc.constant(p),
          offset: fc.constant(offset),
          length: fc.integer({ min: 1, max: size - offset }),
          interrupt
        })
      )
    })
  },
  {
    weight: 3,
    arbitrary: fc.record({ _tag: fc.constant("hash" as const), piece, v2: fc.boolean(), interrupt })
  },
  { weight: 1, arbitrary: fc.constant({ _tag: "flush" as const }) },
  { weight: 1, arbitrary: fc.record({ _tag: fc.constant("clear" as const), piece }) },
  {
    weight: 3,
    arbitrary: fc.record({ _tag: fc.constant("pause" as const), turns: fc.integer({ min: 1, max: 8 }) })
  }
)

/** A version of the model: the torrent's bytes, and which of them are known (0 after a clear). */
interface Version {
  readonly bytes: Uint8Array
  readonly known: Uint8Array
}

const blockData = (seed: number, piece: number, block: number, length: number) => {
  const out = new Uint8Array(length)
  for (let i = 0; i < length; i++) out[i] = (seed * 31 + piece * 7 + block * 13 + i * 3) & 0xff
  return out
}

const turns = (n: number) => Effect.repeatN(Effect.yieldNow(), Math.max(0, n - 1))

const run = (
  ops: ReadonlyArray<Op>,
  delays: ReadonlyArray<number>,
  aioThreads: number,
  hashThreads: number
) =>
  Effect.gen(function* () {
    const pool = yield* BufferPool.make(poolOptions(256))
    yield* Effect.scoped(
      Effect.gen(function* () {
        const disk = yield* DiskIo.make({ aioThreads, hashThreads, hashChunkBlocks: 2 }).pipe(
          Effect.provideService(BufferPool.BufferPool, pool),
          Effect.provideService(Hasher.Hasher, Hasher.makeInline())
        )
        // Every storage call takes a few turns, so jobs interleave differently in each run.
        let call = 0
        const delay = () => turns(delays[call++ % delays.length]!)
        const storage = yield* controlled(layout, { beforeRead: delay, beforeWrite: delay })
        const t = yield* disk.addTorrent(storage)

        const versions: Array<Version> = [
          { bytes: new Uint8Array(layout.totalLength), known: new Uint8Array(layout.totalLength).fill(1) }
        ]
        const current = () => versions[versions.length - 1]!
        const next = (change: (v: { bytes: Uint8Array; known: Uint8Array }) => void) => {
          const v = { bytes: current().bytes.slice(), known: current().known.slice() }
          change(v)
          versions.push(v)
        }

        /** Does `got` equal bytes [start, start + got.length) of some version in [from, to]? */
        const matches = (got: Uint8Array, start: number, from: number, to: number) => {
          for (let v = from; v <= to; v++) {
            const { bytes, known } = versions[v]!
            let ok = true
            for (let i = 0; i < got.length && ok; i++) {
              if (known[start + i] === 1 && bytes[start + i] !== got[i]) ok = false
            }
            if (ok) return true
          }
          return false
        }

        const checks: Array<Fiber.RuntimeFiber<void, DiskIo.DiskIoError>> = []
        // A forked fiber starts later; wait until the job has been issued (its synchronous
        // prefix ran) so that the model's order is the engine's order.
        const forkIssued = <A>(job: Effect.Effect<A, DiskIo.DiskIoError>) =>
          Effect.gen(function* () {
            const issued = yield* Deferred.make<void>()
            const fiber = yield* Effect.fork(Effect.zipRight(Deferred.succeed(issued, undefined), job))
            yield* Deferred.await(issued)
            return fiber
          })
        const stopLater = (fiber: Fiber.RuntimeFiber<void, DiskIo.DiskIoError>, after: number) =>
          after === 0
            ? Effect.void
            : Effect.asVoid(Effect.fork(Effect.zipRight(turns(after), Fiber.interrupt(fiber))))

        for (const o of ops) {
          switch (o._tag) {
            case "write": {
              const offset = o.block * BLOCK
              const length = Math.min(BLOCK, Layout.pieceSize(layout, o.piece) - offset)
              const bytes = blockData(o.seed, o.piece, o.block, length)
              const start = o.piece * layout.pieceLength + offset
              next((v) => {
                v.bytes.set(bytes, start)
                v.known.fill(1, start, start + length)
              })
              const block = pool.unsafeTryAcquire("write")!
              block.bytes.set(bytes)
              yield* disk.write(t, o.piece, offset, block)
              break
            }
            case "read": {
              const from = versions.length - 1
              const start = o.piece * layout.pieceLength + o.offset
              const fiber = yield* forkIssued(
                Effect.map(disk.readOwned(t, o.piece, o.offset, o.length), (read) => {
                  const to = versions.length - 1
                  const got = concat(read.views)
                  read.release()
                  assert.strictEqual(got.length, o.length)
                  assert.isTrue(
                    matches(got, start, from, to),
                    `read ${o.piece}/${o.offset}+${o.length} matches no version in [${from}, ${to}]`
                  )
                })
              )
              checks.push(fiber)
              yield* stopLater(fiber, o.interrupt)
              break
            }
            case "hash": {
              const from = versions.length - 1
              const start = o.piece * layout.pieceLength
              const size = Layout.pieceSize(layout, o.piece)
              const fiber = yield* forkIssued(
                Effect.map(disk.hash(t, o.piece, { v2: o.v2 }), (hashed) => {
                  const to = versions.length - 1
                  const candidates: Array<Version> = []
                  for (let v = from; v <= to; v++) {
                    if (versions[v]!.known.subarray(start, start + size).every((k) => k === 1))
                      candidates.push(versions[v]!)
                  }
                  if (candidates.length > 0) {
                    const found = candidates.find(
                      (v) => hex(sha1(v.bytes.subarray(start, start + size))) === hex(hashed.sha1)
                    )
                    assert.isDefined(found, `hash of piece ${o.piece} matches no version in [${from}, ${to}]`)
                    if (o.v2) {
                      const leaves = []
                      for (let at = 0; at < size; at += 16384)
                        leaves.push(
                          hex(sha256(found!.bytes.subarray(start + at, start + Math.min(size, at + 16384))))
                        )
                      assert.deepStrictEqual(hashed.blockHashes?.map(hex), leaves)
                    }
                  }
                  // It ran after the piece's earlier writes: none of them is still missing from storage.
                  for (let b = 0; b < blocksOf(o.piece); b++) {
                    const s = start + b * BLOCK
                    const e = start + Math.min(size, (b + 1) * BLOCK)
                    if (versions[from]!.known.subarray(s, e).every((k) => k === 1)) {
                      assert.isTrue(
                        matches(storage.bytes.subarray(s, e), s, from, versions.length - 1),
                        `block ${b} of piece ${o.piece} not on storage after its hash`
                      )
                    }
                  }
                })
              )
              checks.push(fiber)
              yield* stopLater(fiber, o.interrupt)
              break
            }
            case "flush": {
              yield* disk.flush(t)
              // Nothing new was issued while the driver waited: storage equals the model.
              assert.isTrue(
                matches(storage.bytes, 0, versions.length - 1, versions.length - 1),
                "flushed storage"
              )
              break
            }
            case "clear": {
              // What a cleared piece holds is whatever reached storage: unknown until rewritten.
              const start = o.piece * layout.pieceLength
              next((v) => v.known.fill(0, start, start + Layout.pieceSize(layout, o.piece)))
              yield* disk.clearPiece(t, o.piece)
              break
            }
            case "pause":
              yield* turns(o.turns)
          }
        }

        for (const fiber of checks) {
          const exit = yield* Fiber.await(fiber)
          if (Exit.isFailure(exit) && !Exit.isInterrupted(exit)) return yield* exit
        }
        yield* disk.flush(t)
        assert.isTrue(matches(storage.bytes, 0, versions.length - 1, versions.length - 1), "final storage")
        assert.strictEqual(pool.unsafeStats().inUse, 0, "blocks leaked")
        const stats = disk.unsafeStats()
        assert.strictEqual(stats.storeBufferBlocks, 0)
        for (const kind of ["read", "write", "hash"] as const) {
          assert.strictEqual(stats.jobs[kind].queued + stats.jobs[kind].running, 0, kind)
        }
      })
    )
    assert.strictEqual(pool.unsafeStats().inUse, 0)
  }).pipe(
    Effect.scoped,
    Effect.timeoutFail({ duration: "10 seconds", onTimeout: () => new Error("deadlock?") })
  )

describe("DiskIo properties", () => {
  it.live.prop(
    "reads and hashes see exactly the writes before them; interruption leaks nothing",
    {
      ops: fc.array(op, { minLength: 1, maxLength: 40 }),
      delays: fc.array(fc.integer({ min: 0, max: 4 }), { minLength: 1, maxLength: 16 }),
      aioThreads: fc.integer({ min: 1, max: 4 }),
      hashThreads: fc.integer({ min: 1, max: 3 })
    },
    ({ aioThreads, delays, hashThreads, ops }) => run(ops, delays, aioThreads, hashThreads),
    { timeout: 50_000, fastCheck: { numRuns: RUNS } }
  )
})
