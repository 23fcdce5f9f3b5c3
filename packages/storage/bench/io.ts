/**
 * Reading a warm 1 GiB file through `Storage` into pool blocks, and writing one, against a plain
 * `node:fs` loop over the same file in the same run. Requests are 256 KiB (16 blocks, one
 * preadv/pwritev), at queue depth 1 and 4 for both sides. Prints MiB/s and ratios.
 *
 *   pnpm --filter @ezio/storage bench        (EZIO_BENCH_DIR=/somewhere to choose the disk, EZIO_BENCH_MIB=1024)
 */
import * as NFS from "node:fs"
import * as NOS from "node:os"
import * as NPath from "node:path"
import { BufferPool } from "@ezio/pool"
import { Effect } from "effect"
import { Layout, Storage } from "../src/index.js"

const MiB = 1024 * 1024
const SIZE = Number(process.env.EZIO_BENCH_MIB ?? 1024) * MiB
const REQUEST = 256 * 1024
const BLOCK = 16 * 1024
const dir = NFS.mkdtempSync(NPath.join(process.env.EZIO_BENCH_DIR ?? NOS.tmpdir(), "ezio-storage-bench-"))
const file = NPath.join(dir, "data.bin")

const mibps = (bytes: number, ns: bigint) => bytes / MiB / (Number(ns) / 1e9)

// Plain node:fs: `depth` loops, each reading or writing 256 KiB at a time into its own buffer.
const plain = (kind: "read" | "write", depth: number) =>
  new Promise<number>((resolve, reject) => {
    const fd = NFS.openSync(file, kind === "read" ? "r" : "r+")
    const start = process.hrtime.bigint()
    let next = 0
    let running = depth
    const loop = (buffer: Buffer) => {
      const position = next
      next += REQUEST
      if (position >= SIZE) {
        if (--running === 0) {
          NFS.closeSync(fd)
          resolve(mibps(SIZE, process.hrtime.bigint() - start))
        }
        return
      }
      const done = (error: NodeJS.ErrnoException | null) => (error ? reject(error) : loop(buffer))
      if (kind === "read") NFS.read(fd, buffer, 0, REQUEST, position, done)
      else NFS.write(fd, buffer, 0, REQUEST, position, done)
    }
    for (let i = 0; i < depth; i++) loop(Buffer.alloc(REQUEST, 1))
  })

const layout = Layout.make({
  name: "data.bin",
  pieceLength: REQUEST,
  files: [{ path: ["data.bin"], length: SIZE }]
})

// Through Storage: each request takes 16 pool blocks, one vectored syscall, gives them back.
const viaStorage = (kind: "read" | "write", depth: number) =>
  Effect.gen(function* () {
    const pool = yield* BufferPool.BufferPool
    const storage = yield* Storage.makeDirectory({
      layout,
      root: dir,
      mode: kind === "read" ? "read" : "readwrite",
      durability: "none"
    })
    const start = process.hrtime.bigint()
    yield* Effect.forEach(
      Array.from({ length: layout.pieceCount }, (_, i) => i),
      (piece) =>
        pool.withBlocks(REQUEST / BLOCK, kind, (blocks) =>
          (kind === "read" ? storage.read : storage.write)(
            piece,
            0,
            blocks.map((b) => b.bytes)
          )
        ),
      { concurrency: depth, discard: true }
    )
    return mibps(SIZE, process.hrtime.bigint() - start)
  }).pipe(Effect.scoped)

const program = Effect.gen(function* () {
  // Make the file and warm the page cache.
  const chunk = Buffer.alloc(8 * MiB, 7)
  const fd = NFS.openSync(file, "w")
  for (let at = 0; at < SIZE; at += chunk.length)
    NFS.writeSync(fd, chunk, 0, Math.min(chunk.length, SIZE - at), at)
  NFS.closeSync(fd)
  yield* Effect.promise(() => plain("read", 1))

  const rows: Array<[string, number, number]> = []
  for (const kind of ["read", "write"] as const) {
    for (const depth of [1, 4]) {
      // Best of 3, alternating, so both sides see the same machine.
      let base = 0
      let ours = 0
      for (let round = 0; round < 3; round++) {
        base = Math.max(base, yield* Effect.promise(() => plain(kind, depth)))
        ours = Math.max(ours, yield* viaStorage(kind, depth))
      }
      rows.push([`${kind}, 256 KiB requests, queue depth ${depth}`, base, ours])
    }
  }
  console.log(`\n@ezio/storage I/O benchmark: ${SIZE / MiB} MiB file in the page cache (best of 3)\n`)
  console.log("| workload | plain node:fs MiB/s | Storage into pool blocks MiB/s | ratio |")
  console.log("|---|---:|---:|---:|")
  for (const [name, base, ours] of rows) {
    console.log(`| ${name} | ${base.toFixed(0)} | ${ours.toFixed(0)} | ${(ours / base).toFixed(2)}x |`)
  }
})

Effect.runPromise(program.pipe(Effect.provide(BufferPool.layer({ capacity: 64 * MiB }))))
  .catch((error) => {
    console.error(error)
    process.exitCode = 1
  })
  .finally(() => NFS.rmSync(dir, { recursive: true, force: true }))
