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
 * Sizes as admins write them (`256MiB`, `1GiB`): the one parser, binary units.
 *
 * @since 0.1.0
 */
export * as Size from "./Size.js"
