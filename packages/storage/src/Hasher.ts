/**
 * The worker-thread piece hasher, which lives in `@ezio/torrent` (torrent creation needs it
 * before any storage exists); re-exported here because checking and the disk engine use it with
 * storage.
 *
 * @since 0.1.0
 */
export * from "@ezio/torrent/Hasher"
