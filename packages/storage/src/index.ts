/**
 * @ezio/storage: torrent pieces onto directories, raw images, block devices and memory; piece
 * hashing on worker threads; checking a target; creating torrents from files and disk images.
 *
 * @since 0.1.0
 */

/** @since 0.1.0 */
export * as Bitfield from "./Bitfield.js"

/** @since 0.1.0 */
export * as Check from "./Check.js"

/** @since 0.1.0 */
export * as Create from "./Create.js"

/** @since 0.1.0 */
export * as FileIo from "./FileIo.js"

/** @since 0.1.0 */
export * as Hasher from "./Hasher.js"

/** @since 0.1.0 */
export * as Layout from "./Layout.js"

/** @since 0.1.0 */
export * as Storage from "./Storage.js"

/** @since 0.1.0 */
export * as StorageError from "./StorageError.js"
