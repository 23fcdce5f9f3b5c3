// The state of one torrent's swarm, shared by its connections: the picker, the choker, the rate
// limiter, and the bridge from plain callbacks into Effect (one runtime call per batch).
import * as Net from "node:net"
import type { DiskIo } from "@ezio/disk-io"
import type { BufferPool } from "@ezio/pool"
import type { Metainfo } from "@ezio/torrent"
import * as Cause from "effect/Cause"
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
import * as Runtime from "effect/Runtime"
import * as Wire from "../Wire.js"
import { Connection } from "./connection.js"
import { Picker } from "./picker.js"

export interface CoreOptions {
  readonly maxPeers: number
  readonly requestQueue: number
  readonly downloadQueue: number
  readonly sendBufferBytes: number
  readonly uploadSlots: number
  readonly uploadRateLimit: number
  readonly slowStart: { readonly initialRate: number; readonly periodMs: number } | undefined
}

export type ReadResult =
  | { readonly _tag: "Success"; readonly read: DiskIo.Read }
  | { readonly _tag: "Failure"; readonly message: string }

/** Upload rate limit with EZIO's optional slow start: a token bucket whose rate ramps up. */
export class RateLimiter {
  private tokens = 0
  private last = Date.now()
  private readonly started = Date.now()
  private timer: NodeJS.Timeout | undefined
  private readonly waiting: Array<() => void> = []

  constructor(
    private readonly limit: number,
    private readonly slowStart: CoreOptions["slowStart"]
  ) {}

  /** Bytes per second allowed now, or Infinity. */
  rate(): number {
    const limit = this.limit > 0 ? this.limit : Infinity
    if (this.slowStart === undefined) return limit
    const elapsed = Date.now() - this.started
    if (elapsed >= this.slowStart.periodMs) return limit
    // Doubles every tenth of the period from the initial rate (EZIO's --slow-start ramps up).
    const ramp = this.slowStart.initialRate * Math.pow(2, (10 * elapsed) / this.slowStart.periodMs)
    return Math.min(limit, ramp)
  }

  /** 0 if `bytes` may go now (and takes them), else milliseconds to wait. */
  take(bytes: number): number {
    const rate = this.rate()
    if (rate === Infinity) return 0
    const now = Date.now()
    this.tokens = Math.min(rate, this.tokens + ((now - this.last) / 1000) * rate)
    this.last = now
    if (this.tokens >= bytes || this.tokens >= rate) {
      this.tokens -= bytes
      return 0
    }
    return Math.max(5, Math.ceil(((bytes - this.tokens) / rate) * 1000))
  }

  wake(delay: number, f: () => void): void {
    this.waiting.push(f)
    if (this.timer !== undefined) return
    this.timer = setTimeout(() => {
      this.timer = undefined
      const all = this.waiting.splice(0)
      for (const g of all) g()
    }, delay)
  }

  close(): void {
    if (this.timer !== undefined) clearTimeout(this.timer)
    this.waiting.length = 0
  }
}

/** Unchoke slots: EZIO unchokes everyone (slots = Infinity); otherwise first come, first served. */
class Choker {
  private unchoked = 0
  private readonly queue: Array<Connection> = []
  constructor(private readonly slots: number) {}

  interested(c: Connection): void {
    if (!c.amChoking) return
    if (this.unchoked < this.slots) {
      this.unchoked++
      c.unchoke()
    } else if (!this.queue.includes(c)) this.queue.push(c)
  }

  notInterested(c: Connection): void {
    const i = this.queue.indexOf(c)
    if (i >= 0) this.queue.splice(i, 1)
    if (this.slots !== Infinity && !c.amChoking) {
      c.choke()
      this.release()
    }
  }

  removed(c: Connection): void {
    const i = this.queue.indexOf(c)
    if (i >= 0) this.queue.splice(i, 1)
    if (!c.amChoking) this.release()
  }

  private release(): void {
    this.unchoked--
    const next = this.queue.shift()
    if (next !== undefined && !next.closed) {
      this.unchoked++
      next.unchoke()
    }
  }
}

export interface SwarmEvents {
  readonly onPiece: (piece: number) => void
  readonly onComplete: () => void
  readonly onError: (message: string) => void
  readonly log: (message: string) => void
}

export class SwarmCore {
  readonly picker: Picker
  readonly choker: Choker
  readonly rate: RateLimiter
  readonly handshakeBytes: Uint8Array
  readonly connections = new Set<Connection>()
  /** Where outgoing connections' socket reads land (see `connect`). */
  private readonly readBuffer = Buffer.allocUnsafe(256 * 1024)
  private readonly peerIds = new Map<string, Connection>()
  private readonly dialing = new Set<string>()
  uploaded = 0
  downloaded = 0
  hashFailures = 0
  errors: Array<string> = []
  downloading: boolean
  closed = false
  private inFlight = 0
  private idle: Array<() => void> = []
  private poolWaiters: Array<() => void> = []
  private poolWaiting = false
  private cancelPoolWait: (() => void) | undefined
  private readonly runCallback: ReturnType<typeof Runtime.runCallback<never>>

  constructor(
    readonly metainfo: Metainfo.Metainfo,
    readonly handle: DiskIo.TorrentHandle,
    readonly disk: DiskIo.DiskIoService,
    readonly pool: BufferPool.BufferPoolService,
    runtime: Runtime.Runtime<never>,
    readonly peerId: Uint8Array,
    readonly listenPort: number,
    have: Uint8Array,
    readonly options: CoreOptions,
    readonly events: SwarmEvents
  ) {
    this.runCallback = Runtime.runCallback(runtime)
    this.picker = new Picker(metainfo.pieceCount, metainfo.pieceLength, metainfo.totalLength, have)
    this.choker = new Choker(options.uploadSlots)
    this.rate = new RateLimiter(options.uploadRateLimit, options.slowStart)
    this.downloading = !this.picker.complete
    this.handshakeBytes = Wire.encodeHandshake({
      infoHash: metainfo.infoHash,
      peerId,
      fast: true,
      extensions: true
    })
  }

  get infoHash(): Uint8Array {
    return this.metainfo.infoHash
  }

  /** Runs an effect from a callback, counting it so `close` can wait for every one. */
  private run<A, E>(effect: Effect.Effect<A, E>, onExit: (exit: Exit.Exit<A, E>) => void): void {
    this.inFlight++
    this.runCallback(effect, {
      onExit: (exit) => {
        try {
          onExit(exit)
        } finally {
          if (--this.inFlight === 0) for (const f of this.idle.splice(0)) f()
        }
      }
    })
  }

  awaitIdle(): Promise<void> {
    return this.inFlight === 0 ? Promise.resolve() : new Promise((resolve) => this.idle.push(resolve))
  }

  read(piece: number, begin: number, length: number, done: (result: ReadResult) => void): void {
    this.run(this.disk.readOwned(this.handle, piece, begin, length), (exit) =>
      done(
        Exit.isSuccess(exit)
          ? { _tag: "Success", read: exit.value }
          : { _tag: "Failure", message: Cause.pretty(exit.cause) }
      )
    )
  }

  write(
    batch: ReadonlyArray<{ piece: number; begin: number; block: BufferPool.Block; length: number }>,
    done: (exceeded: boolean) => void
  ): void {
    const disk = this.disk
    const handle = this.handle
    const lastBlockOfTorrent = this.picker.totalLength
    const effect = Effect.forEach(batch, (w) =>
      Effect.either(
        disk.write(
          handle,
          w.piece,
          w.begin,
          w.block,
          w.piece * this.picker.pieceLength + w.begin + w.length === lastBlockOfTorrent ? w.length : undefined
        )
      )
    )
    this.run(effect, (exit) => {
      let exceeded = false
      if (Exit.isSuccess(exit)) {
        for (let i = 0; i < batch.length; i++) {
          const result = exit.value[i]!
          if (result._tag === "Right") exceeded ||= result.right.exceeded
          else {
            this.picker.unreceive(batch[i]!.piece, batch[i]!.begin)
            this.fail(`writing piece ${batch[i]!.piece}: ${result.left.message}`)
          }
        }
      } else this.fail(`writing: ${Cause.pretty(exit.cause)}`)
      for (const w of batch) this.maybeHash(w.piece)
      done(exceeded)
    })
  }

  private maybeHash(piece: number): void {
    const state = this.picker.partial.get(piece)
    if (state === undefined || state.hashing || state.missing > 0) return
    state.hashing = true
    this.run(this.disk.hash(this.handle, piece), (exit) => {
      if (this.closed) return
      const expected = this.metainfo.pieces.subarray(piece * 20, piece * 20 + 20)
      if (Exit.isSuccess(exit) && Buffer.compare(exit.value.sha1, expected) === 0) {
        this.picker.markHave(piece)
        const have = Wire.encodeHave(piece)
        for (const c of this.connections) {
          if (!c.handshaken) continue
          c.send(have)
          if (c.amInterested) c.updateInterest()
        }
        this.events.onPiece(piece)
        if (this.picker.complete) {
          this.downloading = false
          this.events.onComplete()
          // Two seeds have nothing to trade.
          for (const c of this.connections) if (c.handshaken && c.isSeed) c.close("both sides are seeds")
        }
      } else {
        if (Exit.isSuccess(exit)) {
          this.hashFailures++
          this.events.log(`piece ${piece} failed its hash check; fetching it again`)
        } else this.fail(`hashing piece ${piece}: ${Cause.pretty(exit.cause)}`)
        this.run(Effect.either(this.disk.clearPiece(this.handle, piece)), () => this.picker.reset(piece))
      }
      for (const c of this.connections) c.fill()
    })
  }

  /** A write or hash failed for a reason other than bad data: stop downloading, keep seeding. */
  private fail(message: string): void {
    this.reportError(message)
    if (this.downloading) {
      this.downloading = false
      this.events.log("downloading stopped after a disk error; still serving the pieces we have")
      for (const c of this.connections) if (c.amInterested) c.updateInterest()
    }
  }

  reportError(message: string): void {
    if (this.errors.length < 100) this.errors.push(message)
    this.events.onError(message)
  }

  whenPoolNormal(f: () => void): void {
    this.poolWaiters.push(f)
    if (this.poolWaiting) return
    this.poolWaiting = true
    // Not counted in flight: it may never end if the pool stays exceeded; close cancels it.
    this.cancelPoolWait = this.runCallback(this.pool.awaitNormal, {
      onExit: () => {
        this.poolWaiting = false
        this.cancelPoolWait = undefined
        for (const g of this.poolWaiters.splice(0)) g()
      }
    })
  }

  cancel(c: Connection, piece: number, begin: number, length: number): void {
    c.cancelRequest(piece, begin, length)
  }

  admit(c: Connection, peerId: Uint8Array): boolean {
    const id = Buffer.from(peerId).toString("hex")
    const existing = this.peerIds.get(id)
    if (existing !== undefined && existing !== c && !existing.closed) return false
    this.peerIds.set(id, c)
    return true
  }

  add(socket: Net.Socket, outgoing: boolean): Connection | undefined {
    if (this.closed || this.connections.size >= this.options.maxPeers) {
      socket.destroy()
      return undefined
    }
    const c = new Connection(this, socket, outgoing)
    this.connections.add(c)
    return c
  }

  removed(c: Connection): void {
    this.connections.delete(c)
    if (c.remotePeerId !== undefined) {
      const id = Buffer.from(c.remotePeerId).toString("hex")
      if (this.peerIds.get(id) === c) this.peerIds.delete(id)
    }
    this.choker.removed(c)
    if (c.closeReason !== undefined && c.handshaken)
      this.events.log(`peer ${c.address} left: ${c.closeReason}`)
    if (!this.closed) for (const other of this.connections) other.fill()
  }

  /** Dials a peer unless already connected or dialing. */
  connect(host: string, port: number): void {
    const address = `${host}:${port}`
    if (this.closed || this.dialing.has(address)) return
    for (const c of this.connections) if (c.address === address) return
    if (this.connections.size >= this.options.maxPeers) return
    this.dialing.add(address)
    // Reads land in one buffer the swarm reuses (the parser copies out everything it keeps,
    // synchronously), instead of a fresh 64 KiB Buffer per read for the GC to collect.
    // Nothing arrives before "connect", which sets the receiver.
    let receiver: Connection | undefined
    const socket = Net.connect({
      host,
      port,
      onread: {
        buffer: this.readBuffer,
        callback: (n, buffer) => {
          receiver?.receive(buffer.subarray(0, n))
          return true
        }
      }
    })
    socket.setTimeout(10_000, () => socket.destroy(new Error("connect timed out")))
    const forget = () => this.dialing.delete(address)
    socket.once("error", forget)
    socket.once("close", forget)
    socket.once("connect", () => {
      socket.setTimeout(0)
      forget()
      receiver = this.add(socket, true)
      receiver?.startOutgoing()
    })
  }

  /** Keep-alives and dead-peer detection, every 30 s. */
  tick(now: number): void {
    for (const c of this.connections) {
      if (now - c.lastReceived > 150_000) c.close("no message for 150 s")
      else if (now - c.lastSent > 60_000) c.send(Wire.encodeKeepAlive())
      if (!c.handshaken && now - c.lastReceived > 20_000) c.close("no handshake within 20 s")
    }
  }

  async close(): Promise<void> {
    this.closed = true
    this.rate.close()
    for (const c of [...this.connections]) c.close("shutting down")
    this.cancelPoolWait?.()
    await this.awaitIdle()
    for (const f of this.poolWaiters.splice(0)) f()
  }
}
