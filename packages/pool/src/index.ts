/**
 * @ezio/pool: one buffer pool shared by disk reads, writes and hashing.
 *
 * @since 0.1.0
 */

/**
 * The pool service, its layers and models.
 *
 * @since 0.1.0
 */
export * as BufferPool from "./BufferPool.js"

/**
 * Typed errors and ownership defects.
 *
 * @since 0.1.0
 */
export * as PoolError from "./PoolError.js"

/**
 * The pool's Effect metrics.
 *
 * @since 0.1.0
 */
export * as PoolMetrics from "./PoolMetrics.js"

/**
 * Copies plain counters into Effect metrics, off the hot path.
 *
 * @since 0.1.0
 */
export * as MetricSync from "./MetricSync.js"

/**
 * Sizes as admins write them (`256MiB`, `1GiB`): the one parser, binary units.
 *
 * @since 0.1.0
 */
export * as Size from "./Size.js"
