/**
 * @ezio/torrent: bencode, .torrent metainfo (with EZIO's raw-image format), magnet links and
 * torrent creation.
 *
 * @since 0.1.0
 */

/** @since 0.1.0 */
export * as Bencode from "./Bencode.js"

/** @since 0.1.0 */
export * as Hasher from "./Hasher.js"

/** @since 0.1.0 */
export * as Metainfo from "./Metainfo.js"

/** @since 0.1.0 */
export * as RawImage from "./RawImage.js"

/** @since 0.1.0 */
export * as Magnet from "./Magnet.js"

/** @since 0.1.0 */
export * as Create from "./Create.js"
