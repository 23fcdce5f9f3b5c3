/**
 * The BEP 15 UDP tracker protocol over `node:dgram`: connect (action 0), announce (action 1),
 * scrape (action 2) and error (action 3), with transaction ids, the 15·2^n s retransmission
 * schedule and connection ids reused for 60 s.
 */
import * as Dgram from "node:dgram"
import * as Dns from "node:dns"
import * as Clock from "effect/Clock"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import { decodeCompactPeers, parseIpv4 } from "./httpTracker.js"
import type { AnnounceEvent, AnnounceRequest, AnnounceResponse, ScrapeEntry } from "./trackerModel.js"
import { TrackerError } from "./trackerModel.js"

/** The BEP 15 magic constant sent in every connect request. */
export const PROTOCOL_ID = 0x41727101980n

export const Action = { Connect: 0, Announce: 1, Scrape: 2, Error: 3 } as const

/** How long a connection id stays valid (BEP 15: one minute). */
export const CONNECTION_ID_TTL_MILLIS = 60_000

const eventCode: Record<AnnounceEvent, number> = { none: 0, completed: 1, started: 2, stopped: 3 }

export interface UdpOptions {
  /** The base of the 15·2^n schedule, in milliseconds (BEP 15: 15 000). */
  readonly baseTimeoutMillis: number
  /** The largest n: the request is sent at most `maxRetransmits + 1` times. */
  readonly maxRetransmits: number
  /** Local address to bind the sockets to; default all interfaces. */
  readonly bindAddress?: string
}

interface Pending {
  readonly address: string
  readonly port: number
  readonly resolve: (message: Buffer) => void
}

interface Target {
  readonly url: string
  readonly address: string
  readonly port: number
  readonly family: 4 | 6
  readonly key: string
}

/** Parses `udp://host:port[/path]`. */
export const parseUdpUrl = (url: string): { readonly host: string; readonly port: number } | undefined => {
  let parsed: URL
  try {
    parsed = new URL(url)
  } catch {
    return undefined
  }
  if (parsed.protocol !== "udp:") return undefined
  const port = Number(parsed.port)
  if (!Number.isInteger(port) || port <= 0 || port > 65535) return undefined
  const host = parsed.hostname.startsWith("[") ? parsed.hostname.slice(1, -1) : parsed.hostname
  return host.length === 0 ? undefined : { host, port }
}

export const randomTransactionId = (): number => (Math.random() * 0x100000000) >>> 0

/** Builds a connect request. */
export const connectRequest = (transactionId: number): Uint8Array => {
  const out = Buffer.alloc(16)
  out.writeBigUInt64BE(PROTOCOL_ID, 0)
  out.writeUInt32BE(Action.Connect, 8)
  out.writeUInt32BE(transactionId, 12)
  return out
}

/** Builds an announce request (98 bytes). */
export const announceRequest = (
  connectionId: Uint8Array,
  transactionId: number,
  request: AnnounceRequest
): Uint8Array => {
  const out = Buffer.alloc(98)
  out.set(connectionId.subarray(0, 8), 0)
  out.writeUInt32BE(Action.Announce, 8)
  out.writeUInt32BE(transactionId, 12)
  out.set(request.infoHash.subarray(0, 20), 16)
  out.set(request.peerId.subarray(0, 20), 36)
  out.writeBigUInt64BE(BigInt(Math.max(0, Math.trunc(request.downloaded))), 56)
  out.writeBigUInt64BE(BigInt(Math.max(0, Math.trunc(request.left))), 64)
  out.writeBigUInt64BE(BigInt(Math.max(0, Math.trunc(request.uploaded))), 72)
  out.writeUInt32BE(eventCode[request.event ?? "none"], 80)
  const ip = request.ip === undefined ? undefined : parseIpv4(request.ip)
  if (ip !== undefined) out.set(ip, 84)
  out.writeUInt32BE((request.key ?? 0) >>> 0, 88)
  out.writeInt32BE(request.numwant ?? -1, 92)
  out.writeUInt16BE(request.port & 0xffff, 96)
  return out
}

/** Builds a scrape request for up to 74 info-hashes. */
export const scrapeRequest = (
  connectionId: Uint8Array,
  transactionId: number,
  infoHashes: ReadonlyArray<Uint8Array>
): Uint8Array => {
  const out = Buffer.alloc(16 + 20 * infoHashes.length)
  out.set(connectionId.subarray(0, 8), 0)
  out.writeUInt32BE(Action.Scrape, 8)
  out.writeUInt32BE(transactionId, 12)
  infoHashes.forEach((h, i) => out.set(h.subarray(0, 20), 16 + 20 * i))
  return out
}

const errorText = (message: Buffer): string => message.subarray(8).toString("utf8").replace(/\0+$/, "")

/**
 * One client's UDP sockets (one per address family, made on first use) and state: pending
 * transactions and cached connection ids. Closed by `close`.
 */
export class UdpClient {
  private sockets = new Map<4 | 6, Dgram.Socket>()
  private binding = new Map<4 | 6, Promise<Dgram.Socket>>()
  private pending = new Map<number, Pending>()
  private connections = new Map<string, { readonly id: Uint8Array; readonly at: number }>()
  private closed = false

  constructor(private readonly options: UdpOptions) {}

  close(): void {
    this.closed = true
    for (const socket of this.sockets.values()) {
      try {
        socket.close()
      } catch {
        // already closed
      }
    }
    this.sockets.clear()
    this.pending.clear()
  }

  private socket(family: 4 | 6, url: string): Effect.Effect<Dgram.Socket, TrackerError> {
    return Effect.async<Dgram.Socket, TrackerError>((resume) => {
      if (this.closed) {
        resume(
          Effect.fail(new TrackerError({ reason: "Network", url, detail: "the tracker client is closed" }))
        )
        return
      }
      const existing = this.sockets.get(family)
      if (existing !== undefined) {
        resume(Effect.succeed(existing))
        return
      }
      let binding = this.binding.get(family)
      if (binding === undefined) {
        binding = new Promise<Dgram.Socket>((resolve, reject) => {
          const socket = Dgram.createSocket(family === 4 ? "udp4" : "udp6")
          socket.on("message", (message, remote) => this.onMessage(message, remote))
          socket.once("error", reject)
          socket.bind(
            {
              port: 0,
              ...(this.options.bindAddress === undefined ? {} : { address: this.options.bindAddress })
            },
            () => {
              socket.off("error", reject)
              socket.on("error", () => {
                // errors on a bound UDP socket (ICMP unreachable and the like) surface as timeouts
              })
              socket.unref()
              if (this.closed) {
                socket.close()
                reject(new Error("closed"))
                return
              }
              this.sockets.set(family, socket)
              resolve(socket)
            }
          )
        })
        this.binding.set(family, binding)
        binding.catch(() => this.binding.delete(family))
      }
      binding.then(
        (socket) => resume(Effect.succeed(socket)),
        (cause) =>
          resume(
            Effect.fail(
              new TrackerError({ reason: "Network", url, detail: "cannot bind a UDP socket", cause })
            )
          )
      )
    })
  }

  private onMessage(message: Buffer, remote: Dgram.RemoteInfo): void {
    if (message.length < 8) return
    const transactionId = message.readUInt32BE(4)
    const pending = this.pending.get(transactionId)
    if (
      pending === undefined ||
      pending.port !== remote.port ||
      !sameAddress(pending.address, remote.address)
    )
      return
    this.pending.delete(transactionId)
    pending.resolve(message)
  }

  /** Sends `packet` and waits up to `timeoutMillis` (on the Clock) for the reply with `transactionId`; `undefined` on timeout. */
  private exchange(
    target: Target,
    packet: Uint8Array,
    transactionId: number,
    timeoutMillis: number
  ): Effect.Effect<Buffer | undefined, TrackerError> {
    return Effect.flatMap(this.socket(target.family, target.url), (socket) =>
      Effect.async<Buffer, TrackerError>((resume) => {
        this.pending.set(transactionId, {
          address: target.address,
          port: target.port,
          resolve: (message) => resume(Effect.succeed(message))
        })
        socket.send(packet, target.port, target.address, (error) => {
          if (error !== null && error !== undefined) {
            this.pending.delete(transactionId)
            resume(
              Effect.fail(
                new TrackerError({ reason: "Network", url: target.url, detail: error.message, cause: error })
              )
            )
          }
        })
        // timed out or interrupted: a late reply finds no pending transaction and is dropped
        return Effect.sync(() => {
          this.pending.delete(transactionId)
        })
      }).pipe(
        Effect.timeoutTo({
          duration: Duration.millis(timeoutMillis),
          onSuccess: (message): Buffer | undefined => message,
          onTimeout: () => undefined
        })
      )
    )
  }

  private resolveTarget(url: string): Effect.Effect<Target, TrackerError> {
    const parsed = parseUdpUrl(url)
    if (parsed === undefined) {
      return Effect.fail(new TrackerError({ reason: "Unsupported", url, detail: "expected udp://host:port" }))
    }
    return Effect.async<Target, TrackerError>((resume) => {
      Dns.lookup(parsed.host, (error, address, family) => {
        if (error !== null) {
          resume(
            Effect.fail(new TrackerError({ reason: "Network", url, detail: error.message, cause: error }))
          )
          return
        }
        const fam = family === 6 ? 6 : 4
        resume(
          Effect.succeed({ url, address, port: parsed.port, family: fam, key: `${address}|${parsed.port}` })
        )
      })
    })
  }

  /**
   * Runs one request/response exchange with retransmission: connects first when no connection id
   * younger than 60 s is cached. `n` (the 15·2^n exponent) grows with every timeout of either packet.
   */
  private transact<A>(
    url: string,
    build: (connectionId: Uint8Array, transactionId: number) => Uint8Array,
    expectAction: number,
    decode: (message: Buffer, target: Target) => A | TrackerError
  ): Effect.Effect<A, TrackerError> {
    const { baseTimeoutMillis, maxRetransmits } = this.options
    return Effect.flatMap(this.resolveTarget(url), (target) => {
      const timeoutOf = (n: number) => baseTimeoutMillis * 2 ** n
      const timedOut = () =>
        new TrackerError({
          reason: "Timeout",
          url,
          detail: `no response after ${maxRetransmits + 1} attempts (${baseTimeoutMillis} ms · 2^n)`
        })
      const attempt = (n: number, retriedStaleId: boolean): Effect.Effect<A, TrackerError> => {
        if (n > maxRetransmits) return Effect.fail(timedOut())
        return Effect.flatMap(Clock.currentTimeMillis, (now) => {
          const cached = this.connections.get(target.key)
          const connection: Effect.Effect<{ id: Uint8Array; fresh: boolean } | undefined, TrackerError> =
            cached !== undefined && now - cached.at < CONNECTION_ID_TTL_MILLIS
              ? Effect.succeed({ id: cached.id, fresh: false })
              : this.connect(target, timeoutOf(n), now)
          return Effect.flatMap(connection, (conn) => {
            if (conn === undefined) return attempt(n + 1, retriedStaleId)
            const transactionId = randomTransactionId()
            return Effect.flatMap(
              this.exchange(target, build(conn.id, transactionId), transactionId, timeoutOf(n)),
              (message) => {
                if (message === undefined) return attempt(n + 1, retriedStaleId)
                const action = message.readUInt32BE(0)
                if (action === Action.Error) {
                  // a cached id the tracker forgot (restart, clock): connect again once
                  if (!conn.fresh && !retriedStaleId) {
                    this.connections.delete(target.key)
                    return attempt(n, true)
                  }
                  return Effect.fail(
                    new TrackerError({ reason: "Failure", url, failure: errorText(message) })
                  )
                }
                if (action !== expectAction) {
                  return Effect.fail(
                    new TrackerError({ reason: "Malformed", url, detail: `unexpected action ${action}` })
                  )
                }
                const decoded = decode(message, target)
                return decoded instanceof TrackerError ? Effect.fail(decoded) : Effect.succeed(decoded)
              }
            )
          })
        })
      }
      return attempt(0, false)
    })
  }

  /** Sends a connect request; `undefined` on timeout. Caches the connection id. */
  private connect(
    target: Target,
    timeoutMillis: number,
    now: number
  ): Effect.Effect<{ id: Uint8Array; fresh: boolean } | undefined, TrackerError> {
    const transactionId = randomTransactionId()
    return Effect.flatMap(
      this.exchange(target, connectRequest(transactionId), transactionId, timeoutMillis),
      (message) => {
        if (message === undefined) return Effect.succeed(undefined)
        const action = message.readUInt32BE(0)
        if (action === Action.Error) {
          return Effect.fail(
            new TrackerError({ reason: "Failure", url: target.url, failure: errorText(message) })
          )
        }
        if (action !== Action.Connect || message.length < 16) {
          return Effect.fail(
            new TrackerError({ reason: "Malformed", url: target.url, detail: "invalid connect response" })
          )
        }
        const id = new Uint8Array(message.subarray(8, 16))
        this.connections.set(target.key, { id, at: now })
        return Effect.succeed({ id, fresh: true })
      }
    )
  }

  announce(url: string, request: AnnounceRequest): Effect.Effect<AnnounceResponse, TrackerError> {
    return this.transact(
      url,
      (connectionId, transactionId) => announceRequest(connectionId, transactionId, request),
      Action.Announce,
      (message, target) => {
        if (message.length === 8) {
          return new TrackerError({
            reason: "Malformed",
            url,
            detail:
              "empty announce response: the tracker refused the request (opentracker answers so for info-hashes off its whitelist)"
          })
        }
        if (message.length < 20) {
          return new TrackerError({
            reason: "Malformed",
            url,
            detail: `announce response of ${message.length} bytes`
          })
        }
        const interval = message.readUInt32BE(8)
        return {
          interval: interval > 0 ? interval : 1800,
          incomplete: message.readUInt32BE(12),
          complete: message.readUInt32BE(16),
          peers: decodeCompactPeers(message.subarray(20), target.family)
        }
      }
    )
  }

  scrape(
    url: string,
    infoHashes: ReadonlyArray<Uint8Array>
  ): Effect.Effect<ReadonlyArray<ScrapeEntry>, TrackerError> {
    return this.transact(
      url,
      (connectionId, transactionId) => scrapeRequest(connectionId, transactionId, infoHashes),
      Action.Scrape,
      (message) => {
        if (message.length < 8 + 12 * infoHashes.length) {
          return new TrackerError({
            reason: "Malformed",
            url,
            detail: `scrape response of ${message.length} bytes`
          })
        }
        return infoHashes.map((_, i) => ({
          complete: message.readUInt32BE(8 + 12 * i),
          downloaded: message.readUInt32BE(12 + 12 * i),
          incomplete: message.readUInt32BE(16 + 12 * i)
        }))
      }
    )
  }
}

const sameAddress = (a: string, b: string): boolean =>
  a === b || a.replace(/^::ffff:/, "") === b.replace(/^::ffff:/, "")
