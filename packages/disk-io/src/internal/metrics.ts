/**
 * The copy of the engine's plain counters into its Effect metrics.
 *
 * @internal
 */
import { MetricSync } from "@ezio/pool"
import type * as Effect from "effect/Effect"
import * as DiskIoMetrics from "../DiskIoMetrics.js"
import { jobKinds, type Stats } from "./models.js"

/**
 * The hot path only bumps plain counters; this copies them into the metrics, tagged with the
 * engine's name, so metrics cost nothing per block.
 *
 * @internal
 */
export const makeMetricSync = (name: string, unsafeStats: () => Stats): Effect.Effect<void> => {
  const engine = { engine: name }
  return MetricSync.make(unsafeStats, [
    ...jobKinds.flatMap((kind) => {
      const tags = { ...engine, kind }
      return [
        MetricSync.gauge(MetricSync.tagged(DiskIoMetrics.queued, tags), (s: Stats) => s.jobs[kind].queued),
        MetricSync.gauge(MetricSync.tagged(DiskIoMetrics.running, tags), (s: Stats) => s.jobs[kind].running),
        MetricSync.counter(
          MetricSync.tagged(DiskIoMetrics.completed, tags),
          (s: Stats) => s.jobs[kind].completed
        ),
        MetricSync.counter(MetricSync.tagged(DiskIoMetrics.failed, tags), (s: Stats) => s.jobs[kind].failed)
      ]
    }),
    MetricSync.counter(MetricSync.tagged(DiskIoMetrics.bytesRead, engine), (s) => s.bytesRead),
    MetricSync.counter(MetricSync.tagged(DiskIoMetrics.bytesWritten, engine), (s) => s.bytesWritten),
    MetricSync.counter(MetricSync.tagged(DiskIoMetrics.bytesHashed, engine), (s) => s.bytesHashed),
    MetricSync.counter(MetricSync.tagged(DiskIoMetrics.writeErrors, engine), (s) => s.writeErrors),
    MetricSync.gauge(MetricSync.tagged(DiskIoMetrics.storeBuffer, engine), (s) => s.storeBufferBlocks),
    MetricSync.gauge(MetricSync.tagged(DiskIoMetrics.poolInUse, engine), (s) => s.poolInUse)
  ])
}
