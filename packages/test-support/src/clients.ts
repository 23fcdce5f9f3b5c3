/**
 * Real BitTorrent clients for interop tests: libtorrent (through `libtorrent_client.py` and Debian's
 * python3-libtorrent), aria2c and transmission-cli.
 *
 * Network rule: everything binds and connects to 127.0.0.1 only; DHT, LSD/LPD, PEX, UPnP and NAT-PMP
 * are off in every client. Every child process is started inside `Effect.acquireRelease`, so closing
 * the scope kills it by its PID (SIGTERM, then SIGKILL after a grace period), and every helper is
 * bounded in time.
 *
 * Use `hasLibtorrent` / `hasAria2` / `hasTransmission` with `it.skipIf(!hasX)`.
 */
export * from "./aria2.js"
export * from "./libtorrent.js"
export * from "./process.js"
export * from "./transmission.js"
