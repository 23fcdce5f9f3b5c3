import { assert, describe, it } from "@effect/vitest"
import { Effect, Metric } from "effect"
import { BufferPool, MetricSync, PoolMetrics } from "../src/index.js"

const KiB = 1024

describe("PoolMetrics", () => {
  it.scoped("the pool copies its counters into the exported metrics on a watermark transition", () =>
    Effect.gen(function* () {
      const pool = yield* BufferPool.make({ blockSize: KiB, capacity: 8 * KiB, name: "metrics-test" })
      // 7 of 8 blocks reaches the high watermark (7/8): a transition, which syncs the metrics.
      const blocks = Array.from({ length: 7 }, () => pool.unsafeTryAcquire("write")!)
      assert.isTrue(pool.unsafeIsExceeded())
      // The publishing fiber runs the sync after the transition.
      yield* Effect.repeatN(Effect.yieldNow(), 20)
      const tag = { pool: "metrics-test" }
      const inUse = yield* Metric.value(MetricSync.tagged(PoolMetrics.inUse, { ...tag, category: "write" }))
      const acquired = yield* Metric.value(
        MetricSync.tagged(PoolMetrics.acquired, { ...tag, category: "write" })
      )
      const exceeded = yield* Metric.value(MetricSync.tagged(PoolMetrics.exceeded, tag))
      const peak = yield* Metric.value(MetricSync.tagged(PoolMetrics.peak, tag))
      assert.strictEqual(inUse.value, 7)
      assert.strictEqual(acquired.count, 7)
      assert.strictEqual(exceeded.count, 1)
      assert.strictEqual(peak.value, 7)
      for (const block of blocks) block.release()
    })
  )
})

describe("MetricSync", () => {
  it.effect("sets gauges and adds to counters only what they grew by", () =>
    Effect.gen(function* () {
      const gauge = Metric.gauge("metric_sync_test_gauge")
      const counter = Metric.counter("metric_sync_test_total", { incremental: true })
      const source = { level: 3, total: 5 }
      const sync = MetricSync.make(
        () => source,
        [MetricSync.gauge(gauge, (s) => s.level), MetricSync.counter(counter, (s) => s.total)]
      )
      yield* sync
      assert.strictEqual((yield* Metric.value(gauge)).value, 3)
      assert.strictEqual((yield* Metric.value(counter)).count, 5)
      source.level = 1
      source.total = 9
      yield* sync
      yield* sync
      assert.strictEqual((yield* Metric.value(gauge)).value, 1)
      assert.strictEqual((yield* Metric.value(counter)).count, 9)
    })
  )
})
