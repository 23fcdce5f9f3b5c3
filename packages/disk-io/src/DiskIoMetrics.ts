/**
 * The disk engine's Effect metrics, tagged `engine` (the engine's name) and, for the job metrics,
 * `kind` (`read`, `write` or `hash`). The engine copies its plain counters into them once a
 * second, whenever `stats` is read, and when it closes.
 *
 * @since 0.1.0
 */
import * as Metric from "effect/Metric"

/**
 * Jobs waiting, by `kind`.
 *
 * @since 0.1.0
 * @category metrics
 */
export const queued = Metric.gauge("ezio_disk_jobs_queued", { description: "Disk jobs waiting, by kind" })

/**
 * Jobs in progress, by `kind`.
 *
 * @since 0.1.0
 * @category metrics
 */
export const running = Metric.gauge("ezio_disk_jobs_running", {
  description: "Disk jobs in progress, by kind"
})

/**
 * Jobs done, by `kind`.
 *
 * @since 0.1.0
 * @category metrics
 */
export const completed = Metric.counter("ezio_disk_jobs_completed_total", {
  description: "Disk jobs done, by kind",
  incremental: true
})

/**
 * Jobs failed, by `kind`.
 *
 * @since 0.1.0
 * @category metrics
 */
export const failed = Metric.counter("ezio_disk_jobs_failed_total", {
  description: "Disk jobs failed, by kind",
  incremental: true
})

/**
 * Bytes returned by reads.
 *
 * @since 0.1.0
 * @category metrics
 */
export const bytesRead = Metric.counter("ezio_disk_read_bytes_total", {
  description: "Bytes returned by reads",
  incremental: true
})

/**
 * Bytes written to storage.
 *
 * @since 0.1.0
 * @category metrics
 */
export const bytesWritten = Metric.counter("ezio_disk_written_bytes_total", {
  description: "Bytes written to storage",
  incremental: true
})

/**
 * Bytes hashed.
 *
 * @since 0.1.0
 * @category metrics
 */
export const bytesHashed = Metric.counter("ezio_disk_hashed_bytes_total", {
  description: "Bytes hashed",
  incremental: true
})

/**
 * Written blocks not on storage yet.
 *
 * @since 0.1.0
 * @category metrics
 */
export const storeBuffer = Metric.gauge("ezio_disk_store_buffer_blocks", {
  description: "Written blocks not on storage yet"
})

/**
 * Blocks of the shared pool in use (reads, writes and hashes).
 *
 * @since 0.1.0
 * @category metrics
 */
export const poolInUse = Metric.gauge("ezio_disk_pool_in_use_blocks", {
  description: "Blocks of the shared pool in use (reads, writes and hashes)"
})

/**
 * Failed storage writes.
 *
 * @since 0.1.0
 * @category metrics
 */
export const writeErrors = Metric.counter("ezio_disk_write_errors_total", {
  description: "Failed storage writes",
  incremental: true
})
