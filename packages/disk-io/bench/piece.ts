/**
 * The disk engine's share of a download's main thread, per piece: blocks from the pool go in
 * through `unsafeWriteMany` a dozen at a time (what a socket read brings), and each piece is
 * hashed through `DiskIo.unsafeHash` once its blocks are in, as the swarm does, with no network. Prints
 * the main thread's CPU seconds per GiB (utime + stime of its /proc task) and the whole process's.
 *
 *   npx tsx packages/disk-io/bench/piece.ts     (EZIO_BENCH_MIB=1024, EZIO_BENCH_DIR=/dev/shm)
 */
import * as NFS from "node:fs"
import * as NOS from "node:os"
import * as NPath from "node:path"
import { BufferPool } from "@ezio/pool"
import { Hasher, Layout, Storage } from "@ezio/storage"
import { Effect, Exit, Layer } from "effect"
import { DiskIo } from "../src/index.js"

const MiB = 1024 * 1024
const SIZE = Number(process.env.EZIO_BENCH_MIB ?? 1024) * MiB
const BLOCK = 16 * 1024
const PIECE = MiB
const PER_READ = 12
// EZIO_BENCH_HASH=0: writes only, to tell the write path's share from the hash path's;
// EZIO_BENCH_HASH=hasher: the piece's views straight to the Hasher, without DiskIo.hash;
// EZIO_BENCH_HASH=effect: DiskIo.hash in a fiber per piece instead of DiskIo.unsafeHash.
const hashing = process.env.EZIO_BENCH_HASH !== "0"
const direct = process.env.EZIO_BENCH_HASH === "hasher"
const viaEffect = process.env.EZIO_BENCH_HASH === "effect"
const baseDir = process.env.EZIO_BENCH_DIR ?? (NFS.existsSync("/dev/shm") ? "/dev/shm" : NOS.tmpdir())

const mainCpu = () => {
  const stat = NFS.readFileSync(`/proc/self/task/${process.pid}/stat`, "utf8")
  const f = stat.slice(stat.lastIndexOf(")") + 2).split(" ")
  return (Number(f[11]) + Number(f[12])) / 100
}

const layout = Layout.make({
  name: "data.bin",
  pieceLength: PIECE,
  files: [{ path: ["data.bin"], length: SIZE }]
})

const run = Effect.gen(function* () {
  const dir = NFS.mkdtempSync(NPath.join(baseDir, "ezio-piece-bench-"))
  yield* Effect.addFinalizer(() => Effect.sync(() => NFS.rmSync(dir, { recursive: true, force: true })))
  const disk = yield* DiskIo.DiskIo
  const pool = yield* BufferPool.BufferPool
  const hasher = yield* Hasher.Hasher
  const views: Array<Uint8Array> = []
  const storage = yield* Storage.makeDirectory({ layout, root: dir, mode: "readwrite", durability: "none" })
  const t = yield* disk.addTorrent(storage)
  const blocksPerPiece = PIECE / BLOCK
  const total = layout.pieceCount * blocksPerPiece
  const cpu0 = mainCpu()
  const all0 = process.cpuUsage()
  const start = performance.now()
  yield* Effect.async<void>((resume) => {
    let next = 0
    let hashed = 0
    const turn = () => {
      const batch: Array<DiskIo.BlockWrite> = []
      while (batch.length < PER_READ && next < total) {
        const block = pool.unsafeTryAcquire("write")
        if (block === undefined) break
        block.bytes[0] = next & 255
        batch.push({
          piece: Math.floor(next / blocksPerPiece),
          offset: (next % blocksPerPiece) * BLOCK,
          block
        })
        next++
      }
      if (batch.length > 0) {
        const written = disk.unsafeWriteMany(t, batch)
        if (written.failures.length > 0) throw new Error(written.failures[0]!.error.message)
        for (let i = 0; i < batch.length; i++) {
          const w = batch[i]!
          if (direct) views.push(w.block.bytes)
          if (w.offset + BLOCK !== PIECE) continue
          if (direct) {
            Effect.runCallback(hasher.digest(views.splice(0)), {
              onExit: () => {
                if (++hashed === layout.pieceCount) resume(Effect.void)
              }
            })
          } else if (!hashing) {
            if (++hashed === layout.pieceCount) resume(Effect.void)
          } else {
            const onExit = (exit: Exit.Exit<unknown, unknown>) => {
              if (Exit.isFailure(exit)) throw new Error(`hash ${w.piece} failed`)
              if (++hashed === layout.pieceCount) resume(Effect.void)
            }
            if (viaEffect) Effect.runCallback(disk.hash(t, w.piece), { onExit })
            else disk.unsafeHash(t, w.piece, {}, onExit)
          }
        }
      }
      if (next < total) {
        if (pool.unsafeIsExceeded() || batch.length === 0)
          Effect.runCallback(pool.awaitNormal, { onExit: () => setImmediate(turn) })
        else setImmediate(turn)
      }
    }
    turn()
  })
  const seconds = (performance.now() - start) / 1000
  const stats = yield* disk.stats
  // Before the directory goes: the engine would otherwise still write what it holds, re-creating it.
  yield* disk.removeTorrent(t)
  const all = process.cpuUsage(all0)
  const gib = SIZE / (1024 * MiB)
  console.log(
    `${SIZE / MiB} MiB in ${layout.pieceCount} pieces, ${PER_READ} blocks a batch: main thread ${((mainCpu() - cpu0) / gib).toFixed(2)} CPU-s/GiB, whole process ${((all.user + all.system) / 1e6 / gib).toFixed(2)}, ${seconds.toFixed(1)} s; ${stats.writeBatches} write batches, store buffer peak ${stats.storeBufferPeak} blocks`
  )
}).pipe(Effect.scoped)

const capacity = 64 * MiB
run
  .pipe(
    Effect.provide(
      DiskIo.layer().pipe(
        Layer.provideMerge(Layer.merge(Layer.orDie(BufferPool.layer({ capacity })), Hasher.layer()))
      )
    ),
    Effect.runPromise
  )
  .catch((error) => {
    console.error(error)
    process.exitCode = 1
  })
