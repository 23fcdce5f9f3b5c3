/** transmission-cli as a downloader. */
import * as NFS from "node:fs"
import * as NPath from "node:path"
import { Deferred, Duration, Effect } from "effect"
import { tempDir } from "./data.js"
import { ClientError, directoryBytes, spawnScoped, TRANSMISSION_CLI } from "./process.js"
import type { ExternalDownloadResult } from "./aria2.js"
/**
 * Downloads `torrent` into `dir` with transmission-cli 3.00, listening on 127.0.0.1:`listenPort`
 * (DHT/LPD/PEX/uTP/port mapping off, in a throw-away config dir). Resolves once it reports "Seeding"
 * (it is then killed) or after `timeoutMs` with `done: false`.
 *
 * transmission-cli ignores 127.x peers it gets from a tracker and cannot be told to dial a peer, so the
 * seeder MUST dial it: pick the port first (`freePort`), run this, and have the seeder connect to
 * 127.0.0.1:`listenPort` (e.g. `libtorrentSeed({ peers: [listenPort] })`, which redials until
 * connected). Expect ~10 s before it starts requesting (its rechoke/interest timer) and a slow ramp:
 * this is an interop check, not a benchmark.
 */
export const transmissionDownload = (options: {
  readonly torrent: string
  readonly dir: string
  readonly listenPort: number
  readonly timeoutMs: number
}): Effect.Effect<ExternalDownloadResult, ClientError> =>
  Effect.scoped(
    Effect.gen(function* () {
      const config = yield* tempDir("ezio-transmission-")
      NFS.writeFileSync(
        NPath.join(config, "settings.json"),
        JSON.stringify({
          "dht-enabled": false,
          "lpd-enabled": false,
          "pex-enabled": false,
          "utp-enabled": false,
          "port-forwarding-enabled": false,
          "bind-address-ipv4": "127.0.0.1",
          "bind-address-ipv6": "::1",
          "peer-port": options.listenPort,
          "peer-port-random-on-start": false,
          "rpc-enabled": false,
          "blocklist-enabled": false,
          "speed-limit-down-enabled": false,
          "speed-limit-up-enabled": false,
          "alt-speed-enabled": false,
          "incomplete-dir-enabled": false,
          "rename-partial-files": false,
          "start-added-torrents": true,
          "watch-dir-enabled": false,
          "message-level": 2,
          encryption: 1,
          "cache-size-mb": 64,
          preallocation: 0,
          "peer-limit-global": 200,
          "peer-limit-per-torrent": 50,
          "ratio-limit-enabled": false,
          "idle-seeding-limit-enabled": false
        })
      )
      const finished = yield* Deferred.make<void>()
      let out = ""
      const started = Date.now()
      const child = yield* spawnScoped(
        TRANSMISSION_CLI,
        [
          "-g",
          config,
          "-w",
          options.dir,
          "-p",
          String(options.listenPort),
          "-M",
          "-D",
          "-U",
          options.torrent
        ],
        {}
      )
      // transmission-cli redraws its status line with \r on stdout
      child.process.stdout?.on("data", (d: Buffer) => {
        out += d.toString("utf8")
        if (out.length > 1 << 20) out = out.slice(-(1 << 19))
        if (/\rSeeding|^Seeding|\nSeeding/.test(out)) Deferred.unsafeDone(finished, Effect.void)
      })
      const outcome = yield* Effect.raceFirst(
        Deferred.await(finished).pipe(Effect.as("done" as const)),
        child.exited.pipe(Effect.as("exited" as const))
      ).pipe(Effect.timeout(Duration.millis(options.timeoutMs)), Effect.option)
      const done = outcome._tag === "Some" && outcome.value === "done"
      const secs = (Date.now() - started) / 1000
      const bytes = directoryBytes(options.dir)
      const lastStatus = out
        .split(/[\r\n]/)
        .map((l) => l.trim())
        .filter((l) => l.length > 0)
        .slice(-1)
        .join("\n")
      return {
        done,
        exitCode: outcome._tag === "Some" && outcome.value === "exited" ? yield* child.exited : "SIGTERM",
        seconds: secs,
        transfer_seconds: null,
        bytes,
        mib_per_s: secs > 0 ? bytes / 1048576 / secs : 0,
        transfer_mib_per_s: null,
        hash_failures: null,
        stdout: lastStatus,
        stderr: child.stderr(),
        log: ""
      } satisfies ExternalDownloadResult
    })
  ).pipe(
    Effect.timeoutFail({
      duration: Duration.millis(options.timeoutMs + 15_000),
      onTimeout: () =>
        new ClientError({ client: "transmission", message: "transmission-cli hung past its timeout" })
    })
  )
