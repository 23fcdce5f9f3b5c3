/**
 * @ezio/disk-io: the disk job engine, reads, writes and hashes sharing one buffer pool.
 *
 * @since 0.1.0
 */

/**
 * The engine service, its layer and models.
 *
 * @since 0.1.0
 */
export * as DiskIo from "./DiskIo.js"

/**
 * The one typed error every job fails with.
 *
 * @since 0.1.0
 */
export * as DiskIoError from "./DiskIoError.js"

/**
 * The engine's Effect metrics.
 *
 * @since 0.1.0
 */
export * as DiskIoMetrics from "./DiskIoMetrics.js"
