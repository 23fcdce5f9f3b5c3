/**
 * An HTTP tracker (BEP 3, BEP 23 compact peers, BEP 7 `peers6`, BEP 48 scrape) a seeder can run
 * itself, so a LAN deployment needs no other server. Swarms live in memory; a peer that has not
 * announced for two intervals is forgotten.
 *
 * @since 0.1.0
 */
import * as Http from "node:http"
import * as Context from "effect/Context"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import type * as Scope from "effect/Scope"
import { Bencode } from "@ezio/torrent"
import type { Announce } from "./internal/deployModel.js"
import { encodeCompactPeers, parseIpv4, parseIpv6 } from "./internal/httpTracker.js"
import { shuffleInPlace } from "./internal/shuffle.js"
import { TrackerError } from "./internal/trackerModel.js"
import { parseQuery, toHex } from "./internal/urlCodec.js"

/**
 * @since 0.1.0
 * @category models
 */
export interface Options {
  /** Address to listen on. Default "0.0.0.0". */
  readonly host?: string
  /** Port to listen on; 0 (the default) picks a free one (see `port`). */
  readonly port?: number
  /**
   * The host put in `url` (what peers should use). Default: `host`, or 127.0.0.1 when `host` is a
   * wildcard address. A LAN seeder sets its LAN address here.
   */
  readonly publicHost?: string
  /**
   * Seconds peers are told to wait between announces. Default 5: a deploy's targets are ours and
   * few enough for the tracker (hundreds of announces a second are cheap), and a short interval
   * tells every target of the others soon after they join (PEX does the rest).
   */
  readonly interval?: number
  /** Seconds sent as `min interval`. Default: half of `interval`. */
  readonly minInterval?: number
  /** Peers returned when the client asks for no number. Default 50. */
  readonly defaultNumwant?: number
  /** The most peers returned. Default 200. */
  readonly maxNumwant?: number
  /** If set, only these info-hashes (20 bytes or 40 hex characters) are tracked; others get a failure reason. */
  readonly whitelist?: ReadonlyArray<Uint8Array | string>
  /** Use the `ip` parameter a client sends instead of its connection's address. Default true (LAN use). */
  readonly acceptIpParameter?: boolean
  /** Called with every valid announce, from the request callback (e.g. `Deploy`'s `record`). */
  readonly onAnnounce?: (announce: Announce) => void
}

/**
 * One peer of a swarm, as `swarm` reports it.
 *
 * @since 0.1.0
 * @category models
 */
export interface SwarmPeer {
  readonly peerId: Uint8Array
  readonly ip: string
  readonly port: number
  readonly left: number
  /** When it last announced: milliseconds on the tracker's `Clock`. */
  readonly lastSeen: number
}

/**
 * @since 0.1.0
 * @category models
 */
export interface EmbeddedTrackerService {
  /** The announce URL, e.g. "http://127.0.0.1:6969/announce". */
  readonly url: string
  /** The scrape URL. */
  readonly scrapeUrl: string
  /** The bound port (the real one when `port` was 0). */
  readonly port: number
  readonly host: string
  /** The live peers of a swarm (expired ones purged first). */
  readonly swarm: (infoHash: Uint8Array) => Effect.Effect<ReadonlyArray<SwarmPeer>>
  /** Adds an info-hash to the whitelist at run time (no-op without a whitelist). */
  readonly allow: (infoHash: Uint8Array) => Effect.Effect<void>
}

/**
 * @since 0.1.0
 * @category tags
 */
export class EmbeddedTracker extends Context.Tag("@ezio/peer/EmbeddedTracker")<
  EmbeddedTracker,
  EmbeddedTrackerService
>() {}

interface Entry {
  peerId: Uint8Array
  ip: string
  port: number
  left: number
  lastSeen: number
}

interface Swarm {
  readonly peers: Map<string, Entry>
  downloaded: number
}

const hexOf = (value: Uint8Array | string): string | undefined => {
  if (typeof value === "string") return /^[0-9a-fA-F]{40}$/.test(value) ? value.toLowerCase() : undefined
  return value.length === 20 ? toHex(value) : undefined
}

const normalizeAddress = (address: string | undefined): string => {
  if (address === undefined) return "0.0.0.0"
  return address.startsWith("::ffff:") && address.includes(".") ? address.slice(7) : address
}

const isWildcard = (host: string) => host === "0.0.0.0" || host === "::" || host === ""

const one = (query: Map<string, Array<Uint8Array>>, name: string): Uint8Array | undefined =>
  query.get(name)?.[0]

const asText = (bytes: Uint8Array | undefined): string | undefined =>
  bytes === undefined ? undefined : Buffer.from(bytes).toString("latin1")

const asInt = (bytes: Uint8Array | undefined): number | undefined => {
  const text = asText(bytes)
  if (text === undefined || !/^-?\d+$/.test(text)) return undefined
  const n = Number(text)
  return Number.isSafeInteger(n) ? n : undefined
}

// a target's `name` parameter (ezio's own): UTF-8, control characters dropped, at most 64 characters
const nameOf = (query: Map<string, Array<Uint8Array>>): string | undefined => {
  const bytes = one(query, "name")
  if (bytes === undefined) return undefined
  const name = Buffer.from(bytes)
    .toString("utf8")
    .replace(/[\u0000-\u001f\u007f]/g, "")
    .slice(0, 64)
  return name.length > 0 ? name : undefined
}

/**
 * The pure core: swarms and the request handler, separate from the socket for tests.
 */
class Core {
  readonly swarms = new Map<string, Swarm>()
  readonly whitelist: Set<string> | undefined
  readonly interval: number
  readonly minInterval: number

  constructor(private readonly options: Options) {
    this.interval = options.interval ?? 5
    this.minInterval = options.minInterval ?? Math.max(1, Math.floor(this.interval / 2))
    this.whitelist =
      options.whitelist === undefined
        ? undefined
        : new Set(options.whitelist.map(hexOf).filter((x): x is string => x !== undefined))
  }

  purge(swarm: Swarm, now: number): void {
    const ttl = 2 * this.interval * 1000
    for (const [key, entry] of swarm.peers) if (now - entry.lastSeen > ttl) swarm.peers.delete(key)
  }

  purgeAll(now: number): void {
    for (const [hash, swarm] of this.swarms) {
      this.purge(swarm, now)
      if (swarm.peers.size === 0 && swarm.downloaded === 0) this.swarms.delete(hash)
    }
  }

  failure(reason: string): Uint8Array {
    return Bencode.encode({ "failure reason": Bencode.text(reason) })
  }

  announce(query: Map<string, Array<Uint8Array>>, remote: string, now: number): Uint8Array {
    const infoHash = one(query, "info_hash")
    const peerId = one(query, "peer_id")
    const port = asInt(one(query, "port"))
    if (infoHash === undefined || infoHash.length !== 20) return this.failure("invalid info_hash")
    if (peerId === undefined || peerId.length !== 20) return this.failure("invalid peer_id")
    if (port === undefined || port < 0 || port > 65535) return this.failure("invalid port")
    const hash = toHex(infoHash)
    if (this.whitelist !== undefined && !this.whitelist.has(hash))
      return this.failure("torrent not registered with this tracker")
    const event = asText(one(query, "event")) ?? ""
    const left = asInt(one(query, "left")) ?? 0
    const ipParameter = asText(one(query, "ip"))
    const ip =
      this.options.acceptIpParameter !== false &&
      ipParameter !== undefined &&
      (parseIpv4(ipParameter) !== undefined || parseIpv6(ipParameter) !== undefined)
        ? ipParameter
        : remote
    const compact = asText(one(query, "compact")) !== "0"
    const numwantParameter = asInt(one(query, "numwant"))
    const numwant = Math.min(
      numwantParameter === undefined || numwantParameter < 0
        ? (this.options.defaultNumwant ?? 50)
        : numwantParameter,
      this.options.maxNumwant ?? 200
    )

    this.options.onAnnounce?.({
      infoHash: hash,
      peerId: toHex(peerId),
      ip,
      port,
      event: event === "started" || event === "completed" || event === "stopped" ? event : "none",
      left,
      uploaded: asInt(one(query, "uploaded")) ?? 0,
      downloaded: asInt(one(query, "downloaded")) ?? 0,
      name: nameOf(query),
      at: now
    })
    let swarm = this.swarms.get(hash)
    if (swarm === undefined) {
      swarm = { peers: new Map(), downloaded: 0 }
      this.swarms.set(hash, swarm)
    }
    this.purge(swarm, now)
    const key = toHex(peerId)
    if (event === "stopped") swarm.peers.delete(key)
    else {
      const previous = swarm.peers.get(key)
      if (event === "completed" && (previous === undefined || previous.left > 0)) swarm.downloaded++
      swarm.peers.set(key, { peerId: peerId.slice(), ip, port, left, lastSeen: now })
    }

    let complete = 0
    let incomplete = 0
    for (const entry of swarm.peers.values()) entry.left === 0 ? complete++ : incomplete++
    const others: Array<Entry> = []
    if (event !== "stopped" && numwant > 0) {
      for (const [k, entry] of swarm.peers) if (k !== key && entry.port > 0) others.push(entry)
      // a random subset when the swarm is larger than asked
      shuffleInPlace(others)
      others.length = Math.min(others.length, numwant)
    }
    const response: Record<string, Bencode.Value> = {
      interval: this.interval,
      "min interval": this.minInterval,
      complete,
      incomplete,
      downloaded: swarm.downloaded
    }
    if (compact) {
      const v4 = others.filter((p) => !p.ip.includes(":"))
      const v6 = others.filter((p) => p.ip.includes(":"))
      response["peers"] = encodeCompactPeers(v4, 4)
      if (v6.length > 0) response["peers6"] = encodeCompactPeers(v6, 6)
    } else {
      const noPeerId = asText(one(query, "no_peer_id")) === "1"
      response["peers"] = others.map((p) => ({
        ip: Bencode.text(p.ip),
        port: p.port,
        ...(noPeerId ? {} : { "peer id": p.peerId })
      }))
    }
    return Bencode.encode(response)
  }

  scrape(query: Map<string, Array<Uint8Array>>, now: number): Uint8Array {
    const requested = query.get("info_hash")
    const hashes =
      requested === undefined
        ? [...this.swarms.keys()]
        : requested.filter((h) => h.length === 20).map((h) => toHex(h))
    const files: Record<string, Bencode.Value> = {}
    for (const hash of hashes) {
      if (this.whitelist !== undefined && !this.whitelist.has(hash)) continue
      const swarm = this.swarms.get(hash)
      let complete = 0
      let incomplete = 0
      if (swarm !== undefined) {
        this.purge(swarm, now)
        for (const entry of swarm.peers.values()) entry.left === 0 ? complete++ : incomplete++
      }
      files[Buffer.from(hash, "hex").toString("latin1")] = {
        complete,
        incomplete,
        downloaded: swarm?.downloaded ?? 0
      }
    }
    return Bencode.encode({ files })
  }

  handle(url: string, remote: string, now: number): { readonly status: number; readonly body: Uint8Array } {
    const q = url.indexOf("?")
    const path = q < 0 ? url : url.slice(0, q)
    const query = parseQuery(q < 0 ? "" : url.slice(q + 1))
    if (path !== "/announce" && path !== "/scrape") {
      return { status: 404, body: this.failure("not found") }
    }
    if (query === undefined) return { status: 200, body: this.failure("invalid query string") }
    return {
      status: 200,
      body: path === "/announce" ? this.announce(query, remote, now) : this.scrape(query, now)
    }
  }
}

/**
 * Starts the tracker; it stops when the scope closes. Fails with a `TrackerError` ("Network")
 * when it cannot listen.
 *
 * @since 0.1.0
 * @category constructors
 */
export const make = (
  options: Options = {}
): Effect.Effect<EmbeddedTrackerService, TrackerError, Scope.Scope> =>
  Effect.gen(function* () {
    const core = new Core(options)
    // requests arrive in node:http callbacks, outside any fiber: read the layer's Clock directly
    const clock = yield* Effect.clock
    const host = options.host ?? "0.0.0.0"
    const server = Http.createServer((request, response) => {
      const result = core.handle(
        request.url ?? "/",
        normalizeAddress(request.socket.remoteAddress),
        clock.unsafeCurrentTimeMillis()
      )
      response.writeHead(result.status, {
        "content-type": "text/plain",
        "content-length": result.body.length,
        connection: "close"
      })
      response.end(result.body)
    })
    server.keepAliveTimeout = 1000
    const port = yield* Effect.acquireRelease(
      Effect.async<number, TrackerError>((resume) => {
        const onError = (cause: Error) =>
          resume(
            Effect.fail(
              new TrackerError({
                reason: "Network",
                url: `http://${host}:${options.port ?? 0}`,
                detail: `cannot listen: ${cause.message}`,
                cause
              })
            )
          )
        server.once("error", onError)
        server.listen({ host, port: options.port ?? 0 }, () => {
          server.off("error", onError)
          const address = server.address()
          resume(Effect.succeed(typeof address === "object" && address !== null ? address.port : 0))
        })
      }),
      () =>
        Effect.async<void>((resume) => {
          server.close(() => resume(Effect.void))
          server.closeAllConnections()
        })
    )
    // forget swarms nobody announces to any more; a fiber on the Clock, so TestClock drives it
    yield* Effect.sleep(Duration.millis(Math.max(1000, core.interval * 1000))).pipe(
      Effect.zipRight(Effect.sync(() => core.purgeAll(clock.unsafeCurrentTimeMillis()))),
      Effect.forever,
      Effect.forkScoped
    )
    const publicHost = options.publicHost ?? (isWildcard(host) ? "127.0.0.1" : host)
    const authority = publicHost.includes(":") ? `[${publicHost}]:${port}` : `${publicHost}:${port}`
    return EmbeddedTracker.of({
      url: `http://${authority}/announce`,
      scrapeUrl: `http://${authority}/scrape`,
      port,
      host,
      swarm: (infoHash) =>
        Effect.sync(() => {
          const swarm = core.swarms.get(toHex(infoHash))
          if (swarm === undefined) return []
          core.purge(swarm, clock.unsafeCurrentTimeMillis())
          return [...swarm.peers.values()].map((e) => ({ ...e, peerId: e.peerId.slice() }))
        }),
      allow: (infoHash) =>
        Effect.sync(() => {
          if (core.whitelist !== undefined && infoHash.length === 20) core.whitelist.add(toHex(infoHash))
        })
    })
  })

/**
 * @since 0.1.0
 * @category layers
 */
export const layer = (options: Options = {}): Layer.Layer<EmbeddedTracker, TrackerError> =>
  Layer.scoped(EmbeddedTracker, make(options))
