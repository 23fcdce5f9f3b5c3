/**
 * The pool's Effect metrics, tagged `pool` (the pool's name) and, where noted, `category`. The
 * pool copies its plain counters into them once a second and on every watermark transition.
 *
 * @since 0.1.0
 */
import * as Metric from "effect/Metric"

/**
 * Blocks in use, tagged `pool` and `category`.
 *
 * @since 0.1.0
 * @category metrics
 */
export const inUse = Metric.gauge("ezio_pool_in_use_blocks", { description: "Blocks in use, by category" })

/**
 * The most blocks ever in use at once, tagged `pool`.
 *
 * @since 0.1.0
 * @category metrics
 */
export const peak = Metric.gauge("ezio_pool_peak_blocks", { description: "Most blocks ever in use at once" })

/**
 * Blocks handed out, tagged `pool` and `category`.
 *
 * @since 0.1.0
 * @category metrics
 */
export const acquired = Metric.counter("ezio_pool_acquired_blocks_total", {
  description: "Blocks handed out, by category",
  incremental: true
})

/**
 * Acquisitions that queued at the hard limit, tagged `pool`.
 *
 * @since 0.1.0
 * @category metrics
 */
export const waits = Metric.counter("ezio_pool_waits_total", {
  description: "Acquisitions that queued at the hard limit",
  incremental: true
})

/**
 * Transitions past the high watermark, tagged `pool`.
 *
 * @since 0.1.0
 * @category metrics
 */
export const exceeded = Metric.counter("ezio_pool_exceeded_total", {
  description: "Transitions past the high watermark",
  incremental: true
})
