/**
 * The disk engine against plain Node in the same run, on a warm file (1 GiB by default):
 * - read: 16 KiB requests (a peer's uploads, 16 in flight) and 256 KiB requests through
 *   `DiskIo.readOwned`, against cat-like sequential 128 KiB `fs.read`s into one buffer;
 * - write: 16 KiB blocks through `DiskIo.write` (the engine coalesces them into vectored writes,
 *   the producer obeys the watermark), then `flush`, against a plain `fs.write` loop of 256 KiB;
 * - hash: `DiskIo.hash` of every 1 MiB piece (worker threads), against reading and hashing each
 *   piece with node:crypto SHA-1 on the main thread.
 * Then the peak resident memory of each DiskIo workload (process.memoryUsage().rss sampled every
 * 5 ms) in a child process that runs DiskIo only, checked against the pool's hard limit plus
 * Node's baseline (see `memoryRun`): once with the heap policy the ezio CLI sets, once with V8's
 * default one.
 *
 *   pnpm --filter @ezio/disk-io bench      (EZIO_BENCH_MIB=1024, EZIO_BENCH_DIR=/somewhere)
 */
import * as NChild from "node:child_process"
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
// The memory run (a child process) reuses the parent's directory and file.
const reusedDir = process.env.EZIO_BENCH_REUSE_DIR
const memoryOnly = reusedDir !== undefined
const dir =
  reusedDir ?? NFS.mkdtempSync(NPath.join(process.env.EZIO_BENCH_DIR ?? NOS.tmpdir(), "ezio-diskio-bench-"))
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
const readVia = (request: number, inFlight: number, bytes = SIZE) =>
  withTorrent("read", (disk, _pool, t) => {
    const perPiece = PIECE / request
    const count = bytes / request
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
const writeVia = (bytes = SIZE) =>
  withTorrent("readwrite", (disk, pool, t) =>
    Effect.gen(function* () {
      const perPiece = PIECE / BLOCK
      for (let i = 0; i < bytes / BLOCK; i++) {
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

const hashVia = (inFlight: number, bytes = SIZE) =>
  withTorrent("read", (disk, _pool, t) =>
    Effect.forEach(pieces.slice(0, Math.ceil(bytes / PIECE)), (piece) => disk.hash(t, piece), {
      concurrency: inFlight,
      discard: true
    })
  )

// ---- the run

type Ours = Effect.Effect<unknown, unknown, DiskIo.DiskIo | BufferPool.BufferPool>
interface Workload {
  readonly name: string
  readonly baseName: string
  readonly base: () => Promise<unknown>
  readonly ours: (bytes?: number) => Ours
}

const cat = "cat-like fs.read, 128 KiB"
const workloads: ReadonlyArray<Workload> = [
  {
    name: "read, 16 KiB requests, 16 in flight",
    baseName: cat,
    base: catRead,
    ours: (n) => readVia(16 * 1024, 16, n)
  },
  {
    name: "read, 16 KiB requests, 16 in flight",
    baseName: "fs.read 16 KiB, 16 in flight",
    base: () => plainRead(16 * 1024, 16),
    ours: (n) => readVia(16 * 1024, 16, n)
  },
  {
    name: "read, 256 KiB requests, 4 in flight",
    baseName: cat,
    base: catRead,
    ours: (n) => readVia(256 * 1024, 4, n)
  },
  {
    name: "write, 16 KiB blocks, watermark-paced, then flush",
    baseName: "fs.write loop, 256 KiB x 4",
    base: () => plainWrite(4),
    ours: writeVia
  },
  {
    name: "hash 1 MiB pieces (SHA-1), 2 hashing threads",
    baseName: "fs.readSync + node:crypto SHA-1, 1 thread",
    base: plainHash,
    ours: (n) => hashVia(8, n)
  }
]
// The memory run measures each distinct DiskIo workload once.
const memoryWorkloads = workloads.filter((w, i) => workloads.findIndex((v) => v.name === w.name) === i)

const engine = (capacity: number) =>
  DiskIo.layer({ aioThreads: 4, hashThreads: 4 }).pipe(
    Layer.provideMerge(Layer.merge(Layer.orDie(BufferPool.layer({ capacity })), Hasher.layer({ threads: 2 })))
  )

const runOn = <A>(
  capacity: number,
  body: (run: (effect: Ours) => Promise<unknown>) => Promise<A>
): Promise<{ readonly result: A; readonly pool: BufferPool.Stats }> =>
  Effect.runPromise(
    Effect.provide(
      Effect.gen(function* () {
        const pool = yield* BufferPool.BufferPool
        // The hashing workers boot in the background: wait until each has answered once, so
        // their start-up is part of the baseline, not of the first workload.
        const hasher = yield* Hasher.Hasher
        yield* Effect.forEach(
          Array.from({ length: 2 * hasher.threads }, () => hasher.digest([new Uint8Array(1024)])),
          (job) => job,
          { concurrency: "unbounded", discard: true }
        ).pipe(Effect.orDie)
        const context = yield* Effect.context<DiskIo.DiskIo | BufferPool.BufferPool>()
        const result = yield* Effect.promise(() =>
          body((effect) => Effect.runPromise(Effect.provide(effect, context)))
        )
        return { result, pool: pool.unsafeStats() }
      }),
      engine(capacity)
    )
  )

interface MemoryRow {
  readonly name: string
  readonly baseline: number
  readonly rssPeak: number
  readonly heapGrowth: number
  readonly poolPeak: number
}

/**
 * The child process: DiskIo's workloads only, so nothing else's buffers count. Node's baseline is
 * the process after a warm-up pass of every workload over 32 MiB through a separate 1 MiB pool
 * (the engine's code compiled, libuv's threads and malloc's arenas up), that pool dropped and
 * collected: what any Node program doing this work carries. Each workload then runs once over
 * the whole file on a fresh engine with the measured pool, and its peak RSS is sampled.
 */
const memoryRun = async () => {
  await catRead()
  await runOn(MiB, async (run) => {
    for (const w of memoryWorkloads) await run(w.ours(Math.min(SIZE, 32 * MiB)))
  })
  const gc = (globalThis as { gc?: () => void }).gc
  const settle = () => {
    gc?.()
    gc?.()
  }
  const rows: Array<MemoryRow> = []
  for (const w of memoryWorkloads) {
    settle()
    const { result } = await runOn(POOL, async (run) => {
      const start = process.memoryUsage()
      rssPeak = start.rss
      heapPeak = start.heapTotal
      const timer = setInterval(sampleRss, 5)
      await run(w.ours())
      clearInterval(timer)
      sampleRss()
      return { baseline: start.rss, heapBaseline: start.heapTotal }
    }).then(({ result, pool }) => ({
      result: {
        name: w.name,
        baseline: result.baseline,
        rssPeak,
        heapGrowth: Math.max(0, heapPeak - result.heapBaseline),
        poolPeak: pool.peak * pool.blockSize
      }
    }))
    rows.push(result)
  }
  console.log(JSON.stringify(rows))
}

const speedRun = async () => {
  const rows: Array<[string, string, number, number]> = []
  await runOn(POOL, async (run) => {
    // Best of 3 for each side, alternating, so both see the same machine.
    for (const w of workloads) {
      let b = 0
      let o = 0
      for (let round = 0; round < 3; round++) {
        b = Math.max(b, await time(w.base))
        o = Math.max(o, await time(() => run(w.ours())))
      }
      rows.push([w.name, w.baseName, b, o])
    }
  })
  return rows
}

const main = async () => {
  if (memoryOnly) return memoryRun()
  // Make the file and warm the page cache.
  const chunk = Buffer.alloc(8 * MiB)
  for (let i = 0; i < chunk.length; i++) chunk[i] = (i * 2654435761) >>> 24
  const fd = NFS.openSync(file, "w")
  for (let at = 0; at < SIZE; at += chunk.length)
    NFS.writeSync(fd, chunk, 0, Math.min(chunk.length, SIZE - at), at)
  NFS.closeSync(fd)
  await catRead()
  const rows = await speedRun()

  // Memory is measured in a separate process that runs DiskIo's workloads only: the plain-Node
  // baselines above allocate buffers of their own, which must not count against the engine. Twice:
  // with V8's default heap policy, and with the one the ezio CLI sets (packages/cli/src/internal/heap.ts).
  const memoryOf = (v8Flags: ReadonlyArray<string>) => {
    const child = NChild.spawnSync(
      process.execPath,
      [...v8Flags, "--expose-gc", "--import", "tsx", import.meta.filename],
      {
        env: { ...process.env, EZIO_BENCH_REUSE_DIR: dir },
        encoding: "utf8",
        stdio: ["ignore", "pipe", "inherit"],
        timeout: 10 * 60 * 1000,
        maxBuffer: 16 * 1024 * 1024
      }
    )
    const line = child.stdout.trim().split("\n").pop() ?? ""
    if (child.status !== 0 || line === "") throw new Error(`the memory run failed (exit ${child.status})`)
    return JSON.parse(line) as Array<MemoryRow>
  }
  const policies = [
    { label: "--heap-growing-percent=30", flags: ["--heap-growing-percent=30"] },
    { label: "as the ezio CLI runs (--heap-growing-percent=100)", flags: ["--heap-growing-percent=100"] },
    { label: "V8's default heap policy", flags: [] }
  ].map((policy) => ({ ...policy, rows: memoryOf(policy.flags) }))

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
  const mib = (n: number) => (n / MiB).toFixed(0)
  const limit = POOL
  const verdicts = policies.map(({ label, rows }) => {
    console.log(
      `\nmemory, ${label}: each workload in a separate process running DiskIo only, ` +
        `${mib(limit)} MiB pool (hard limit ${mib(limit)} MiB):\n`
    )
    console.log(
      "| workload | Node baseline RSS | peak RSS | over baseline | pool peak | JS heap growth (garbage between GCs) | verdict |"
    )
    console.log("|---|---:|---:|---:|---:|---:|---|")
    let strict = true
    for (const m of rows) {
      const over = m.rssPeak - m.baseline
      strict &&= over <= limit
      const verdict =
        over <= limit
          ? "within baseline + hard limit"
          : over <= limit + m.heapGrowth
            ? "ABOVE baseline + hard limit, within it + JS heap growth"
            : "ABOVE baseline + hard limit + JS heap growth"
      console.log(
        `| ${m.name} | ${mib(m.baseline)} MiB | ${mib(m.rssPeak)} MiB | +${mib(over)} MiB | ${mib(m.poolPeak)} MiB | ` +
          `${mib(m.heapGrowth)} MiB | ${verdict} |`
      )
    }
    return { label, strict }
  })
  console.log("")
  for (const { label, strict } of verdicts) {
    console.log(
      `${label}: peak RSS ${strict ? "stayed within" : "went ABOVE"} Node's baseline + the pool's hard limit` +
        (strict ? " in every workload" : " in at least one workload")
    )
  }
}

main()
  .catch((error) => {
    console.error(error)
    process.exitCode = 1
  })
  .finally(() => {
    if (!memoryOnly) NFS.rmSync(dir, { recursive: true, force: true })
  })
