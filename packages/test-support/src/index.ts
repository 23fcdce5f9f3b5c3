/**
 * @ezio/test-support: what ezio's tests and benchmarks share. Private, never published.
 *
 * `data` (temp dirs, deterministic bytes, digests) is cheap to import; `clients` probes for
 * python3-libtorrent, aria2c and transmission-cli when it loads, so tests that need only data
 * import `@ezio/test-support/data`.
 */
export * from "./clients.js"
export * from "./data.js"
export * from "./opentracker.js"
