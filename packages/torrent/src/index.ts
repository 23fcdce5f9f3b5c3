/**
 * @ezio/torrent: pure codecs: bencode, .torrent metainfo (with EZIO's raw-image format) and magnet
 * links. No threads, no file I/O: torrent creation and hashing live in `@ezio/storage`.
 *
 * @since 0.1.0
 */

/** @since 0.1.0 */
export * as Bencode from "./Bencode.js"

/** @since 0.1.0 */
export * as Metainfo from "./Metainfo.js"

/** @since 0.1.0 */
export * as RawImage from "./RawImage.js"

/** @since 0.1.0 */
export * as Magnet from "./Magnet.js"
