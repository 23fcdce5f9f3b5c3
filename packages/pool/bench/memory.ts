/**
 * Resident memory of an idle pool and of a full one (every block written once), as the process
 * sees it, against the same process before the pool exists. Slabs are made on first need, so an
 * idle 256 MiB pool should cost next to nothing.
 *
 *   pnpm --filter @ezio/pool exec tsx bench/memory.ts
 */
import { Effect } from "effect"
import { BufferPool } from "../src/index.js"

const MiB = 1024 * 1024
const rss = () => {
  ;(globalThis as { gc?: () => void }).gc?.()
  return process.memoryUsage().rss / MiB
}

const program = Effect.scoped(
  Effect.gen(function* () {
    const before = rss()
    const pool = yield* BufferPool.make({ capacity: 256 * MiB })
    const idle = rss()
    const blocks: Array<BufferPool.Block> = []
    for (;;) {
      const block = pool.unsafeTryAcquire("read")
      if (block === undefined) break
      block.bytes.fill(1)
      blocks.push(block)
    }
    const full = rss()
    for (const block of blocks) block.release()
    const released = rss()
    const stats = yield* pool.stats
    console.log(`\n@ezio/pool resident memory (256 MiB pool, ${stats.hardLimitBlocks} blocks of 16 KiB)\n`)
    console.log("| state | process RSS | over the process before the pool |")
    console.log("|---|---:|---:|")
    console.log(`| before the pool | ${before.toFixed(1)} MiB | |`)
    console.log(`| idle pool | ${idle.toFixed(1)} MiB | ${(idle - before).toFixed(1)} MiB |`)
    console.log(
      `| full pool (every block written) | ${full.toFixed(1)} MiB | ${(full - before).toFixed(1)} MiB |`
    )
    console.log(
      `| after releasing every block | ${released.toFixed(1)} MiB | ${(released - before).toFixed(1)} MiB |`
    )
    console.log(
      "\nReleased blocks stay committed for reuse (no garbage, no re-faulting); the pool never commits more than its peak use."
    )
  })
)

Effect.runPromise(program).catch((e) => {
  console.error(e)
  process.exit(1)
})
