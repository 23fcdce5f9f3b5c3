/**
 * Creating a torrent of the same file: ezio (Create.fromPath, worker hashing) against mktorrent
 * with as many threads as cores, in one run, page cache warm for both. Best of 3 each.
 *
 *   pnpm --filter @ezio/storage bench      (EZIO_BENCH_MIB=1024, EZIO_BENCH_DIR=os.tmpdir())
 */
import { Effect } from "effect"
import * as NChild from "node:child_process"
import * as NFS from "node:fs"
import * as NOS from "node:os"
import * as NPath from "node:path"
import { Create, Hasher } from "../src/index.js"

const mib = Number(process.env.EZIO_BENCH_MIB ?? 1024)
const dir = NFS.mkdtempSync(NPath.join(process.env.EZIO_BENCH_DIR ?? NOS.tmpdir(), "ezio-bench-create-"))
const file = NPath.join(dir, "data.bin")
const threads = NOS.availableParallelism()
const pieceLength = 1024 * 1024

try {
  // Incompressible data, written once; then read once so both tools hash from the page cache.
  const chunk = Buffer.alloc(16 * 1024 * 1024)
  const fd = NFS.openSync(file, "w")
  for (let i = 0; i < mib / 16; i++) {
    for (let j = 0; j < chunk.length; j += 4) chunk.writeUInt32LE((i * 2654435761 + j * 40503) >>> 0, j)
    NFS.writeSync(fd, chunk)
  }
  NFS.closeSync(fd)
  NFS.readFileSync(file).length

  const time = (f: () => void) => {
    const start = process.hrtime.bigint()
    f()
    return Number(process.hrtime.bigint() - start) / 1e9
  }
  const best = (label: string, f: () => void) => {
    const times = [0, 1, 2].map(() => time(f))
    const seconds = Math.min(...times)
    return { label, seconds, mibps: mib / seconds }
  }

  const hasMktorrent = NChild.spawnSync("mktorrent", ["-h"]).error === undefined
  const mk = hasMktorrent
    ? best(`mktorrent -t ${threads}`, () => {
        const out = NPath.join(dir, "mk.torrent")
        NFS.rmSync(out, { force: true })
        const r = NChild.spawnSync("mktorrent", ["-t", String(threads), "-l", "20", "-o", out, file])
        if (r.status !== 0) throw new Error(String(r.stderr))
      })
    : undefined

  const ours = await Effect.runPromise(
    Effect.gen(function* () {
      const times: Array<number> = []
      for (let i = 0; i < 3; i++) {
        const start = process.hrtime.bigint()
        yield* Create.fromPath(file, { pieceLength })
        times.push(Number(process.hrtime.bigint() - start) / 1e9)
      }
      const seconds = Math.min(...times)
      return { label: `ezio (${threads} hashing workers)`, seconds, mibps: mib / seconds }
    }).pipe(Effect.provide(Hasher.layer({ threads })))
  )

  console.log(`\ncreate a torrent of a ${mib} MiB file, 1 MiB pieces, warm page cache, best of 3\n`)
  console.log("| tool | seconds | MiB/s | ratio vs mktorrent |")
  console.log("| --- | ---: | ---: | ---: |")
  for (const row of [mk, ours]) {
    if (row === undefined) continue
    const ratio = mk === undefined ? "n/a" : `${(row.mibps / mk.mibps).toFixed(2)}x`
    console.log(`| ${row.label} | ${row.seconds.toFixed(2)} | ${row.mibps.toFixed(0)} | ${ratio} |`)
  }
  if (mk === undefined) console.log("(mktorrent is not installed: apt-get install -y mktorrent)")
} finally {
  NFS.rmSync(dir, { recursive: true, force: true })
}
