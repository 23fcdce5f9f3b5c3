/**
 * The BEP 3 HTTP tracker protocol: announce URLs with byte-wise percent-encoding, bencoded
 * responses (BEP 23 compact peers, BEP 7 `peers6`), scrape, and a small `node:http(s)` GET.
 */
import * as Http from "node:http"
import * as Https from "node:https"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Either from "effect/Either"
import { Bencode } from "@ezio/torrent"
import {
  type AnnounceRequest,
  type AnnounceResponse,
  type PeerAddress,
  type ScrapeEntry,
  TrackerError
} from "./trackerModel.js"
import { percentEncode, toHex } from "./urlCodec.js"

const querySeparator = (url: string): string =>
  url.endsWith("?") || url.endsWith("&") ? "" : url.includes("?") ? "&" : "?"

/** The announce URL: `url` plus the BEP 3 parameters, `compact=1` always. */
export const announceUrl = (url: string, request: AnnounceRequest): string => {
  const hash = url.indexOf("#")
  const base = hash < 0 ? url : url.slice(0, hash)
  let query =
    `info_hash=${percentEncode(request.infoHash)}` +
    `&peer_id=${percentEncode(request.peerId)}` +
    `&port=${request.port}` +
    `&uploaded=${request.uploaded}` +
    `&downloaded=${request.downloaded}` +
    `&left=${request.left}` +
    `&corrupt=0&compact=1&no_peer_id=1`
  if (request.event !== undefined && request.event !== "none") query += `&event=${request.event}`
  if (request.numwant !== undefined) query += `&numwant=${request.numwant}`
  if (request.key !== undefined)
    query += `&key=${(request.key >>> 0).toString(16).toUpperCase().padStart(8, "0")}`
  if (request.ip !== undefined) query += `&ip=${encodeURIComponent(request.ip)}`
  if (request.trackerId !== undefined) query += `&trackerid=${encodeURIComponent(request.trackerId)}`
  return base + querySeparator(base) + query
}

/**
 * The scrape URL by convention: the last path segment's "announce" replaced by "scrape";
 * `undefined` if the announce URL does not allow scraping.
 */
export const scrapeUrlOf = (announce: string): string | undefined => {
  const q = announce.indexOf("?")
  const path = q < 0 ? announce : announce.slice(0, q)
  const slash = path.lastIndexOf("/")
  if (slash < 0 || !path.startsWith("announce", slash + 1)) return undefined
  return (
    path.slice(0, slash + 1) +
    "scrape" +
    path.slice(slash + 1 + "announce".length) +
    (q < 0 ? "" : announce.slice(q))
  )
}

/** The scrape URL for `infoHashes`. */
export const scrapeUrl = (scrape: string, infoHashes: ReadonlyArray<Uint8Array>): string =>
  scrape + querySeparator(scrape) + infoHashes.map((h) => `info_hash=${percentEncode(h)}`).join("&")

const ipv4At = (b: Uint8Array, at: number): string => `${b[at]}.${b[at + 1]}.${b[at + 2]}.${b[at + 3]}`

const ipv6At = (b: Uint8Array, at: number): string => {
  const groups: Array<string> = []
  for (let i = 0; i < 16; i += 2) groups.push(((b[at + i]! << 8) | b[at + i + 1]!).toString(16))
  // collapse the longest run of zero groups (RFC 5952)
  let bestStart = -1
  let bestLength = 0
  for (let i = 0; i < 8;) {
    if (groups[i] !== "0") {
      i++
      continue
    }
    let j = i
    while (j < 8 && groups[j] === "0") j++
    if (j - i > bestLength && j - i > 1) {
      bestStart = i
      bestLength = j - i
    }
    i = j
  }
  if (bestStart < 0) return groups.join(":")
  return `${groups.slice(0, bestStart).join(":")}::${groups.slice(bestStart + bestLength).join(":")}`
}

/**
 * BEP 23 compact peers: 6 bytes each (IPv4 + port), or 18 (IPv6 + port) for `peers6`. Trailing
 * bytes that do not make a whole entry are ignored; port 0 entries are dropped.
 */
export const decodeCompactPeers = (bytes: Uint8Array, family: 4 | 6): Array<PeerAddress> => {
  const size = family === 4 ? 6 : 18
  const peers: Array<PeerAddress> = []
  for (let at = 0; at + size <= bytes.length; at += size) {
    const port = (bytes[at + size - 2]! << 8) | bytes[at + size - 1]!
    if (port === 0) continue
    peers.push({ ip: family === 4 ? ipv4At(bytes, at) : ipv6At(bytes, at), port })
  }
  return peers
}

/** Compact encoding of IPv4 peers (the others are skipped). */
export const encodeCompactPeers = (peers: ReadonlyArray<PeerAddress>, family: 4 | 6): Uint8Array => {
  const size = family === 4 ? 6 : 18
  const parsed: Array<[Uint8Array, number]> = []
  for (const peer of peers) {
    const ip = family === 4 ? parseIpv4(peer.ip) : parseIpv6(peer.ip)
    if (ip !== undefined) parsed.push([ip, peer.port])
  }
  const out = new Uint8Array(parsed.length * size)
  parsed.forEach(([ip, port], i) => {
    out.set(ip, i * size)
    out[i * size + size - 2] = port >>> 8
    out[i * size + size - 1] = port & 0xff
  })
  return out
}

/** Dotted-quad IPv4 to 4 bytes, or `undefined`. */
export const parseIpv4 = (ip: string): Uint8Array | undefined => {
  const parts = ip.split(".")
  if (parts.length !== 4) return undefined
  const out = new Uint8Array(4)
  for (let i = 0; i < 4; i++) {
    const p = parts[i]!
    if (!/^\d{1,3}$/.test(p)) return undefined
    const v = Number(p)
    if (v > 255) return undefined
    out[i] = v
  }
  return out
}

/** IPv6 text to 16 bytes, or `undefined` (IPv4-mapped tails are accepted). */
export const parseIpv6 = (ip: string): Uint8Array | undefined => {
  if (!ip.includes(":")) return undefined
  const zone = ip.indexOf("%")
  const text = zone < 0 ? ip : ip.slice(0, zone)
  const halves = text.split("::")
  if (halves.length > 2) return undefined
  const groupsOf = (s: string): Array<number> | undefined => {
    if (s.length === 0) return []
    const out: Array<number> = []
    const parts = s.split(":")
    for (let i = 0; i < parts.length; i++) {
      const p = parts[i]!
      if (i === parts.length - 1 && p.includes(".")) {
        const v4 = parseIpv4(p)
        if (v4 === undefined) return undefined
        out.push((v4[0]! << 8) | v4[1]!, (v4[2]! << 8) | v4[3]!)
      } else {
        if (!/^[0-9a-fA-F]{1,4}$/.test(p)) return undefined
        out.push(parseInt(p, 16))
      }
    }
    return out
  }
  const head = groupsOf(halves[0]!)
  const tail = halves.length === 2 ? groupsOf(halves[1]!) : []
  if (head === undefined || tail === undefined) return undefined
  const fill = 8 - head.length - tail.length
  if (halves.length === 2 ? fill < 1 : fill !== 0) return undefined
  const groups = [...head, ...Array<number>(fill).fill(0), ...tail]
  const out = new Uint8Array(16)
  groups.forEach((g, i) => {
    out[i * 2] = g >>> 8
    out[i * 2 + 1] = g & 0xff
  })
  return out
}

const text = (v: Bencode.Value | undefined): string | undefined =>
  v instanceof Uint8Array ? Bencode.toText(v) : undefined

const int = (v: Bencode.Value | undefined): number | undefined => (typeof v === "number" ? v : undefined)

const decodeDict = (url: string, body: Uint8Array): Either.Either<Bencode.Dict, TrackerError> => {
  const decoded = Bencode.decode(body, { allowUnsortedKeys: true })
  if (Either.isLeft(decoded)) {
    return Either.left(
      new TrackerError({ reason: "Malformed", url, detail: decoded.left.message, cause: decoded.left })
    )
  }
  if (!Bencode.isDict(decoded.right)) {
    return Either.left(
      new TrackerError({ reason: "Malformed", url, detail: "the response is not a dictionary" })
    )
  }
  return Either.right(decoded.right)
}

/** Default interval when a response has none, as libtorrent does. */
const DEFAULT_INTERVAL = 1800

/** A bencoded announce response; `failure reason` becomes a `"Failure"` error. */
export const parseAnnounceResponse = (
  url: string,
  body: Uint8Array
): Either.Either<AnnounceResponse, TrackerError> =>
  Either.flatMap(decodeDict(url, body), (dict) => {
    const failure = dict["failure reason"]
    if (failure !== undefined) {
      return Either.left(
        new TrackerError({ reason: "Failure", url, failure: text(failure) ?? String(failure) })
      )
    }
    const peers: Array<PeerAddress> = []
    const rawPeers = dict["peers"]
    if (rawPeers instanceof Uint8Array) peers.push(...decodeCompactPeers(rawPeers, 4))
    else if (Array.isArray(rawPeers)) {
      for (const entry of rawPeers as ReadonlyArray<Bencode.Value>) {
        if (!Bencode.isDict(entry)) continue
        const ip = text(entry["ip"])
        const port = int(entry["port"])
        const peerId = entry["peer id"]
        if (ip === undefined || port === undefined || port <= 0 || port > 65535) continue
        peers.push({ ip, port, ...(peerId instanceof Uint8Array ? { peerId } : {}) })
      }
    } else if (rawPeers !== undefined) {
      return Either.left(
        new TrackerError({ reason: "Malformed", url, detail: "peers is neither a string nor a list" })
      )
    }
    const peers6 = dict["peers6"]
    if (peers6 instanceof Uint8Array) peers.push(...decodeCompactPeers(peers6, 6))
    const interval = int(dict["interval"])
    const minInterval = int(dict["min interval"])
    const complete = int(dict["complete"])
    const incomplete = int(dict["incomplete"])
    const warning = text(dict["warning message"])
    const trackerId = text(dict["tracker id"])
    return Either.right({
      interval: interval !== undefined && interval > 0 ? interval : DEFAULT_INTERVAL,
      ...(minInterval !== undefined && minInterval > 0 ? { minInterval } : {}),
      ...(complete !== undefined ? { complete } : {}),
      ...(incomplete !== undefined ? { incomplete } : {}),
      ...(warning !== undefined ? { warning } : {}),
      ...(trackerId !== undefined ? { trackerId } : {}),
      peers
    })
  })

/** A bencoded scrape response, keyed by lower-case hex info-hash. */
export const parseScrapeResponse = (
  url: string,
  body: Uint8Array
): Either.Either<ReadonlyMap<string, ScrapeEntry>, TrackerError> =>
  Either.flatMap(decodeDict(url, body), (dict) => {
    const failure = dict["failure reason"]
    if (failure !== undefined) {
      return Either.left(
        new TrackerError({ reason: "Failure", url, failure: text(failure) ?? String(failure) })
      )
    }
    const files = dict["files"]
    if (!Bencode.isDict(files)) {
      return Either.left(new TrackerError({ reason: "Malformed", url, detail: "no files dictionary" }))
    }
    const out = new Map<string, ScrapeEntry>()
    for (const [key, value] of Object.entries(files)) {
      if (!Bencode.isDict(value)) continue
      out.set(toHex(Buffer.from(key, "latin1")), {
        complete: int(value["complete"]) ?? 0,
        incomplete: int(value["incomplete"]) ?? 0,
        downloaded: int(value["downloaded"]) ?? 0
      })
    }
    return Either.right(out)
  })

export interface HttpOptions {
  readonly timeoutMillis: number
  readonly maxBytes: number
  readonly userAgent: string
}

/**
 * GET `requestUrl` (already percent-encoded) and return the body of a 200 response; errors name
 * `url`. The whole request is bounded by `timeoutMillis` on the Clock (the request is destroyed).
 */
export const httpGet = (
  requestUrl: string,
  url: string,
  options: HttpOptions
): Effect.Effect<Uint8Array, TrackerError> =>
  Effect.async<Uint8Array, TrackerError>((resume) => {
    let parsed: URL
    try {
      parsed = new URL(requestUrl)
    } catch (cause) {
      resume(Effect.fail(new TrackerError({ reason: "Unsupported", url, detail: "invalid URL", cause })))
      return
    }
    const module = parsed.protocol === "https:" ? Https : parsed.protocol === "http:" ? Http : undefined
    if (module === undefined) {
      resume(
        Effect.fail(new TrackerError({ reason: "Unsupported", url, detail: `scheme ${parsed.protocol}` }))
      )
      return
    }
    let done = false
    const finish = (effect: Effect.Effect<Uint8Array, TrackerError>) => {
      if (done) return
      done = true
      resume(effect)
    }
    const request = module.get(
      parsed,
      {
        // no connection reuse: trackers such as opentracker close after every response, and a
        // pooled keep-alive socket would fail the next announce with ECONNRESET
        agent: false,
        headers: { "user-agent": options.userAgent, "accept-encoding": "identity", connection: "close" }
      },
      (response) => {
        const status = response.statusCode ?? 0
        if (status !== 200) {
          response.resume()
          finish(
            Effect.fail(
              new TrackerError({ reason: "Http", url, status, detail: response.statusMessage ?? "" })
            )
          )
          request.destroy()
          return
        }
        const chunks: Array<Buffer> = []
        let size = 0
        response.on("data", (chunk: Buffer) => {
          size += chunk.length
          if (size > options.maxBytes) {
            finish(
              Effect.fail(
                new TrackerError({
                  reason: "Malformed",
                  url,
                  detail: `response larger than ${options.maxBytes} bytes`
                })
              )
            )
            request.destroy()
            return
          }
          chunks.push(chunk)
        })
        response.on("end", () => {
          const body = Buffer.concat(chunks)
          finish(Effect.succeed(new Uint8Array(body.buffer, body.byteOffset, body.length)))
        })
        response.on("error", (cause) =>
          finish(Effect.fail(new TrackerError({ reason: "Network", url, cause })))
        )
      }
    )
    request.on("error", (cause) =>
      finish(Effect.fail(new TrackerError({ reason: "Network", url, detail: cause.message, cause })))
    )
    // interrupted (by the timeout below or the caller): stop listening and drop the connection
    return Effect.sync(() => {
      done = true
      request.destroy()
    })
  }).pipe(
    Effect.timeoutFail({
      duration: Duration.millis(options.timeoutMillis),
      onTimeout: () =>
        new TrackerError({ reason: "Timeout", url, detail: `no response in ${options.timeoutMillis} ms` })
    })
  )
