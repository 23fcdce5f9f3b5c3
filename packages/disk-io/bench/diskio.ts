/**
 * The disk engine against plain Node in the same run, on a warm file (1 GiB by default):
 * - read: 16 KiB requests (a peer's uploads, 16 in flight) and 256 KiB requests through
 *   `DiskIo.readOwned`, against cat-like sequential 128 KiB `fs.read`s into one buffer;
 * - write: 16 KiB blocks through `DiskIo.write` (the engine coalesces them into vectored writes,
 *   the producer obeys the watermark), then `flush`, against a plain `fs.write` loop of 256 KiB;
 * - hash: `DiskIo.hash` of every 1 MiB piece (worker threads), against reading and hashing each
 *   piece with node:crypto SHA-1 on the main thread.
 * Also the peak resident memory (process.memoryUsage().rss sampled every 5 ms) and the pool's peak,
 * checked against the pool's hard limit plus Node's baseline.
 *
 *   pnpm --filter @ezio/disk-io bench      (EZIO_BENCH_MIB=1024, EZIO_BENCH_DIR=/somewhere)
 */
import * as NCrypto from "node:crypto"
import * as NFS from "node:fs"
import * as NOS from "node:os"
import * as NPath from "node:path"
import { BufferPool } from "@ezio/pool"
import { Hasher, Layout, Storage } from "@ezio/storage"
import { Effect, Layer } from "effect"
import { DiskIo } from "../src/index.js"

const MiB = 1024 * 1024
const SIZE = Number(process.env.EZIO_BENCH_MIB ?? 1024) * MiB
const BLOCK = 16 * 1024
const PIECE = MiB
const POOL = 64 * MiB
const dir = NFS.mkdtempSync(NPath.join(process.env.EZIO_BENCH_DIR ?? NOS.tmpdir(), "ezio-diskio-bench-"))
const file = NPath.join(dir, "data.bin")

const mibps = (bytes: number, ns: bigint) => bytes / MiB / (Number(ns) / 1e9)
const time = async (run: () => Promise<unknown>) => {
  const start = process.hrtime.bigint()
  await run()
  return mibps(SIZE, process.hrtime.bigint() - start)
}

// ---- resident memory, sampled

let rssPeak = 0
let heapPeak = 0
const sampleRss = () => {
  const usage = process.memoryUsage()
  if (usage.rss > rssPeak) rssPeak = usage.rss
  if (usage.heapTotal > heapPeak) heapPeak = usage.heapTotal
}

// ---- plain Node

const catRead = () =>
  new Promise<void>((resolve, reject) => {
    const fd = NFS.openSync(file, "r")
    const buffer = Buffer.alloc(128 * 1024)
    const loop = (position: number) =>
      NFS.read(fd, buffer, 0, buffer.length, position, (error, n) => {
        if (error) return reject(error)
        if (n === 0 || position + n >= SIZE) {
          NFS.closeSync(fd)
          return resolve()
        }
        loop(position + n)
      })
    loop(0)
  })

const plainRead = (request: number, depth: number) =>
  new Promise<void>((resolve, reject) => {
    const fd = NFS.openSync(file, "r")
    let next = 0
    let running = depth
    const loop = (buffer: Buffer) => {
      const position = next
      next += request
      if (position >= SIZE) {
        if (--running === 0) {
          NFS.closeSync(fd)
          resolve()
        }
        return
      }
      NFS.read(fd, buffer, 0, request, position, (error) => (error ? reject(error) : loop(buffer)))
    }
    for (let i = 0; i < depth; i++) loop(Buffer.alloc(request))
  })

const plainWrite = (depth: number) =>
  new Promise<void>((resolve, reject) => {
    const fd = NFS.openSync(file, "r+")
    const REQUEST = 256 * 1024
    let next = 0
    let running = depth
    const loop = (buffer: Buffer) => {
      const position = next
      next += REQUEST
      if (position >= SIZE) {
        if (--running === 0) {
          NFS.closeSync(fd)
          resolve()
        }
        return
      }
      NFS.write(fd, buffer, 0, REQUEST, position, (error) => (error ? reject(error) : loop(buffer)))
    }
    for (let i = 0; i < depth; i++) loop(Buffer.alloc(REQUEST, 3))
  })

const plainHash = () =>
  new Promise<void>((resolve) => {
    const fd = NFS.openSync(file, "r")
    const buffer = Buffer.alloc(PIECE)
    for (let at = 0; at < SIZE; at += PIECE) {
      const n = NFS.readSync(fd, buffer, 0, Math.min(PIECE, SIZE - at), at)
      NCrypto.createHash("sha1").update(buffer.subarray(0, n)).digest()
    }
    NFS.closeSync(fd)
    resolve()
  })

// ---- through DiskIo

const layout = Layout.make({
  name: "data.bin",
  pieceLength: PIECE,
  files: [{ path: ["data.bin"], length: SIZE }]
})
const pieces = Array.from({ length: layout.pieceCount }, (_, i) => i)

const withTorrent = <A, E>(
  mode: "read" | "readwrite",
  body: (
    disk: DiskIo.DiskIoService,
    pool: BufferPool.BufferPoolService,
    t: DiskIo.TorrentHandle
  ) => Effect.Effect<A, E>
) =>
  Effect.gen(function* () {
    const disk = yield* DiskIo.DiskIo
    const pool = yield* BufferPool.BufferPool
    const storage = yield* Storage.makeDirectory({ layout, root: dir, mode, durability: "none" })
    const t = yield* disk.addTorrent(storage)
    const result = yield* body(disk, pool, t)
    yield* disk.removeTorrent(t)
    return result
  }).pipe(Effect.scoped)

// `inFlight` uploading peers, each serving its share of the requests one after another.
const readVia = (request: number, inFlight: number) =>
  withTorrent("read", (disk, _pool, t) => {
    const perPiece = PIECE / request
    const count = SIZE / request
    let next = 0
    const peer = Effect.gen(function* () {
      while (next < count) {
        const i = next++
        const read = yield* disk.readOwned(t, Math.floor(i / perPiece), (i % perPiece) * request, request)
        read.release()
      }
    })
    return Effect.all(
      Array.from({ length: inFlight }, () => peer),
      { concurrency: "unbounded", discard: true }
    )
  })

// One producer, as a downloading peer: a block from the pool, into the engine, and when the pool
// is past its high watermark, wait for it to be normal again before "reading the socket".
const writeVia = withTorrent("readwrite", (disk, pool, t) =>
  Effect.gen(function* () {
    const perPiece = PIECE / BLOCK
    for (let i = 0; i < SIZE / BLOCK; i++) {
      let block = pool.unsafeTryAcquire("write")
      while (block === undefined) {
        yield* pool.awaitNormal
        block = pool.unsafeTryAcquire("write")
      }
      const { exceeded } = yield* disk.write(t, Math.floor(i / perPiece), (i % perPiece) * BLOCK, block)
      if (exceeded) yield* pool.awaitNormal
    }
    yield* disk.flush(t)
  })
)

const hashVia = (inFlight: number) =>
  withTorrent("read", (disk, _pool, t) =>
    Effect.forEach(pieces, (piece) => disk.hash(t, piece), { concurrency: inFlight, discard: true })
  )

// ---- the run

const main = async () => {
  // Make the file and warm the page cache.
  const chunk = Buffer.alloc(8 * MiB)
  for (let i = 0; i < chunk.length; i++) chunk[i] = (i * 2654435761) >>> 24
  const fd = NFS.openSync(file, "w")
  for (let at = 0; at < SIZE; at += chunk.length)
    NFS.writeSync(fd, chunk, 0, Math.min(chunk.length, SIZE - at), at)
  NFS.closeSync(fd)
  await catRead()
  let baseline = 0
  let heapBaseline = 0

  const timer = setInterval(sampleRss, 5)

  const rows: Array<[string, string, number, number]> = []
  const program = Effect.gen(function* () {
    const pool = yield* BufferPool.BufferPool
    // Node's baseline: the process with the engine, the hashing workers and an empty pool (its
    // slabs are made on first need), before any data moves.
    baseline = process.memoryUsage().rss
    heapBaseline = process.memoryUsage().heapTotal
    const context = yield* Effect.context<DiskIo.DiskIo | BufferPool.BufferPool>()
    const through = (effect: Effect.Effect<unknown, unknown, DiskIo.DiskIo | BufferPool.BufferPool>) => () =>
      time(() => Effect.runPromise(Effect.provide(effect, context)))

    // Best of 3 for each side, alternating, so both see the same machine.
    const measure = (
      name: string,
      baseName: string,
      base: () => Promise<unknown>,
      ours: () => Promise<number>
    ) =>
      Effect.promise(async () => {
        let b = 0
        let o = 0
        for (let round = 0; round < 3; round++) {
          b = Math.max(b, await time(base))
          o = Math.max(o, await ours())
        }
        rows.push([name, baseName, b, o])
      })

    const cat = "cat-like fs.read, 128 KiB"
    yield* measure("read, 16 KiB requests, 16 in flight", cat, catRead, through(readVia(16 * 1024, 16)))
    yield* measure(
      "read, 16 KiB requests, 16 in flight",
      "fs.read 16 KiB, 16 in flight",
      () => plainRead(16 * 1024, 16),
      through(readVia(16 * 1024, 16))
    )
    yield* measure("read, 256 KiB requests, 4 in flight", cat, catRead, through(readVia(256 * 1024, 4)))
    yield* measure(
      "write, 16 KiB blocks, watermark-paced, then flush",
      "fs.write loop, 256 KiB x 4",
      () => plainWrite(4),
      through(writeVia)
    )
    yield* measure(
      "hash 1 MiB pieces (SHA-1), 2 hashing threads",
      "fs.readSync + node:crypto SHA-1, 1 thread",
      plainHash,
      through(hashVia(8))
    )
    return pool.unsafeStats()
  })

  const layers = DiskIo.layer({ aioThreads: 4, hashThreads: 4 }).pipe(
    Layer.provideMerge(
      Layer.merge(Layer.orDie(BufferPool.layer({ capacity: POOL })), Hasher.layer({ threads: 2 }))
    )
  )
  const poolStats = await Effect.runPromise(Effect.provide(program, layers))
  clearInterval(timer)
  sampleRss()

  console.log(
    `\n@ezio/disk-io benchmark: ${SIZE / MiB} MiB file in the page cache, ${NOS.availableParallelism()} cores, best of 3\n`
  )
  console.log("| workload | plain Node | plain MiB/s | DiskIo MiB/s | ratio |")
  console.log("|---|---|---:|---:|---:|")
  for (const [name, baseName, base, ours] of rows) {
    console.log(
      `| ${name} | ${baseName} | ${base.toFixed(0)} | ${ours.toFixed(0)} | ${(ours / base).toFixed(2)}x |`
    )
  }
  const limit = poolStats.hardLimitBlocks * poolStats.blockSize
  const poolPeak = poolStats.peak * poolStats.blockSize
  const heapGrowth = Math.max(0, heapPeak - heapBaseline)
  const mib = (n: number) => (n / MiB).toFixed(0)
  console.log(
    `\nmemory: Node baseline RSS ${mib(baseline)} MiB (engine, 2 hashing workers, empty pool); ` +
      `peak RSS ${mib(rssPeak)} MiB (+${mib(rssPeak - baseline)} MiB); pool peak ${mib(poolPeak)} MiB of its ` +
      `${mib(limit)} MiB hard limit; JS heap grew ${mib(heapGrowth)} MiB (garbage between GCs)`
  )
  console.log(
    `peak RSS ${rssPeak <= baseline + limit ? "within" : "ABOVE"} baseline + hard limit; ` +
      `${rssPeak <= baseline + limit + heapGrowth ? "within" : "ABOVE"} baseline + hard limit + JS heap growth`
  )
}

main()
  .catch((error) => {
    console.error(error)
    process.exitCode = 1
  })
  .finally(() => NFS.rmSync(dir, { recursive: true, force: true }))
