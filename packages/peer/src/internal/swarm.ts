// The state of one torrent's swarm, shared by its connections: the picker, the choker, the rate
// limiter, and the bridge from plain callbacks into Effect (one fiber per batch, in a FiberSet).
//
// A downloaded block: `Connection.fill` asks `pick` for blocks to request; the block's bytes land
// in a pool block (the parser's `blockTarget`); `Connection.onPiece` reports it to `received`
// (the picker's bookkeeping, cancels to other peers in the end game) and queues it; after the
// socket read, `write` sends the batch to DiskIo and, once a piece's blocks are all written,
// `maybeHash` verifies it and announces it.
import * as Net from "node:net"
import type { DiskIo } from "@ezio/disk-io"
import type { BufferPool } from "@ezio/pool"
import type { Bitfield } from "@ezio/storage"
import type { Metainfo } from "@ezio/torrent"
import * as Cause from "effect/Cause"
import * as Deferred from "effect/Deferred"
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
import * as Fiber from "effect/Fiber"
import * as FiberSet from "effect/FiberSet"
import * as PubSub from "effect/PubSub"
import type * as Scope from "effect/Scope"
import * as Take from "effect/Take"
import * as Wire from "../Wire.js"
import * as Choker from "./choker.js"
import { Connection } from "./connection.js"
import { type Pick, Picker } from "./picker.js"
import * as RateLimiter from "./rateLimiter.js"
import type { BlockWrite, ReadResult, SwarmLink } from "./swarmLink.js"

export interface CoreOptions {
  readonly maxPeers: number
  readonly requestQueue: number
  readonly downloadQueue: number
  readonly sendBufferBytes: number
  readonly uploadSlots: number
  readonly uploadRateLimit: number
  readonly slowStart: RateLimiter.SlowStart | undefined
}

export interface SwarmParams {
  readonly metainfo: Metainfo.Metainfo
  readonly handle: DiskIo.TorrentHandle
  readonly disk: DiskIo.DiskIoService
  readonly pool: BufferPool.BufferPoolService
  readonly peerId: Uint8Array
  readonly listenPort: number
  /** The pieces we have; the swarm's own from here on. */
  readonly have: Bitfield.Bitfield
  readonly options: CoreOptions
}

type Run = <A, E>(effect: Effect.Effect<A, E>) => Fiber.RuntimeFiber<A, E>

/**
 * A failure's own message (an expected error names what and where), the storage error's when it
 * wraps one (the errno and the path are what a user acts on), a stack only for a defect.
 */
const messageOf = (cause: Cause.Cause<{ readonly message: string; readonly cause?: unknown }>): string => {
  const failure = Cause.failureOption(cause)
  if (failure._tag === "None") return Cause.pretty(cause)
  const inner = failure.value.cause as { readonly _tag?: unknown; readonly message?: unknown } | undefined
  return inner?._tag === "StorageError" && typeof inner.message === "string"
    ? inner.message
    : failure.value.message
}

/**
 * A swarm in the current scope: its fibers (disk batches, rate-limit waits, the choker's
 * rotation) end with it, and closing it closes every peer and waits for the writes in flight.
 */
export const make = (params: SwarmParams): Effect.Effect<SwarmCore, never, Scope.Scope> =>
  Effect.gen(function* () {
    const clock = yield* Effect.clock
    const fibers = yield* FiberSet.make()
    const run = yield* FiberSet.runtime(fibers)()
    const rate = yield* RateLimiter.make(params.options.uploadRateLimit, params.options.slowStart)
    const choker = yield* Choker.make<Connection>(params.options.uploadSlots)
    const pieces = yield* PubSub.unbounded<Take.Take<number>>()
    const completed = yield* Deferred.make<void>()
    const core = new SwarmCore(params, {
      run,
      awaitIdle: FiberSet.awaitEmpty(fibers),
      now: () => clock.unsafeCurrentTimeMillis(),
      rate,
      choker,
      pieces,
      completed
    })
    yield* Effect.addFinalizer(() => core.close)
    return core
  })

interface Machinery {
  readonly run: Run
  readonly awaitIdle: Effect.Effect<void>
  readonly now: () => number
  readonly rate: RateLimiter.RateLimiter
  readonly choker: Choker.Choker<Connection>
  readonly pieces: PubSub.PubSub<Take.Take<number>>
  readonly completed: Deferred.Deferred<void>
}

export class SwarmCore implements SwarmLink<Connection> {
  readonly metainfo: Metainfo.Metainfo
  readonly picker: Picker<Connection>
  readonly handshakeBytes: Uint8Array
  readonly peerId: Uint8Array
  readonly listenPort: number
  readonly options: CoreOptions
  readonly pool: BufferPool.BufferPoolService
  readonly connections = new Set<Connection>()
  /** Verified pieces as `Take`s, ended by `Take.end` when the torrent completes or the swarm closes. */
  readonly pieces: PubSub.PubSub<Take.Take<number>>
  readonly completed: Deferred.Deferred<void>
  readonly now: () => number
  readonly choker: Choker.Choker<Connection>
  /** Where outgoing connections' socket reads land (see `connect`). */
  private readonly readBuffer = Buffer.allocUnsafe(256 * 1024)
  private readonly peerIds = new Map<string, Connection>()
  private readonly dialing = new Set<string>()
  private readonly handle: DiskIo.TorrentHandle
  private readonly disk: DiskIo.DiskIoService
  private readonly rate: RateLimiter.RateLimiter
  private readonly run: Run
  uploadedBytes = 0
  downloadedBytes = 0
  hashFailures = 0
  errors: Array<string> = []
  downloading: boolean
  /** The disk error that stopped the download (it would fail again): the first one. */
  failure: string | undefined
  /** Pieces we have but could not read (a failing disk): their requests are dropped. */
  readonly unreadablePieces = new Set<number>()
  closed = false
  private poolWaiters: Array<() => void> = []
  private poolWait: Fiber.RuntimeFiber<void> | undefined

  constructor(
    params: SwarmParams,
    private readonly machinery: Machinery
  ) {
    this.metainfo = params.metainfo
    this.handle = params.handle
    this.disk = params.disk
    this.pool = params.pool
    this.peerId = params.peerId
    this.listenPort = params.listenPort
    this.options = params.options
    this.run = machinery.run
    this.now = machinery.now
    this.rate = machinery.rate
    this.choker = machinery.choker
    this.pieces = machinery.pieces
    this.completed = machinery.completed
    const metainfo = params.metainfo
    this.picker = new Picker(metainfo.pieceCount, metainfo.pieceLength, metainfo.totalLength, params.have)
    this.downloading = !this.picker.complete
    if (this.picker.complete) this.markComplete()
    this.handshakeBytes = Wire.encodeHandshake({
      infoHash: metainfo.infoHash,
      peerId: params.peerId,
      fast: true,
      extensions: true
    })
  }

  get infoHash(): Uint8Array {
    return this.metainfo.infoHash
  }

  /** Runs an effect from a callback in the swarm's FiberSet (so `close` waits for it). */
  private runThen<A, E>(effect: Effect.Effect<A, E>, onExit: (exit: Exit.Exit<A, E>) => void): void {
    this.run(effect).addObserver(onExit)
  }

  private log(message: string): void {
    this.run(Effect.logDebug(`${this.metainfo.name}: ${message}`))
  }

  // ------------------------------------------------------------------------------------------
  // What connections report (SwarmLink)

  admit(c: Connection, peerId: Uint8Array): boolean {
    const id = Buffer.from(peerId).toString("hex")
    const existing = this.peerIds.get(id)
    if (existing !== undefined && existing !== c && !existing.closed) return false
    this.peerIds.set(id, c)
    return true
  }

  peerHasPiece(piece: number): void {
    this.picker.addPiece(piece)
  }

  peerBitfield(bits: Bitfield.Bitfield | "all", delta: 1 | -1): void {
    this.picker.addAvailability(bits, delta)
  }

  peerInterested(c: Connection): void {
    this.choker.interested(c)
  }

  peerNotInterested(c: Connection): void {
    this.choker.notInterested(c)
  }

  uploadDelay(bytes: number): number {
    return this.rate.take(bytes)
  }

  wakeUpload(delay: number, f: () => void): void {
    this.rate.wake(delay, f)
  }

  uploaded(bytes: number): void {
    this.uploadedBytes += bytes
  }

  read(piece: number, begin: number, length: number, done: (result: ReadResult) => void): void {
    this.runThen(this.disk.readOwned(this.handle, piece, begin, length), (exit) => {
      if (Exit.isSuccess(exit)) return done({ _tag: "Success", read: exit.value })
      // Asking the disk again for every re-request would spin: serve this piece no more.
      if (!Cause.isInterruptedOnly(exit.cause)) this.unreadablePieces.add(piece)
      done({ _tag: "Failure", message: `reading piece ${piece}: ${messageOf(exit.cause)}` })
    })
  }

  unreadable(piece: number): boolean {
    return this.unreadablePieces.size > 0 && this.unreadablePieces.has(piece)
  }

  pick(c: Connection, want: number): Array<Pick> {
    return this.picker.pick(c, c.peerHas, want)
  }

  received(c: Connection, piece: number, begin: number, length: number): boolean {
    const requesters = this.picker.received(c, piece, begin, length)
    if (requesters === undefined) return false
    // End game: the others asked for this block need not send it.
    for (const other of requesters) if (other !== c) other.cancelRequest(piece, begin, length)
    return true
  }

  abandon(c: Connection, piece: number, begin: number): void {
    this.picker.abandon(c, piece, begin)
  }

  unreceive(piece: number, begin: number): void {
    this.picker.unreceive(piece, begin)
  }

  write(batch: ReadonlyArray<BlockWrite>, done: (exceeded: boolean) => void): void {
    const disk = this.disk
    const handle = this.handle
    const end = this.picker.totalLength
    const pieceLength = this.picker.pieceLength
    for (const w of batch) this.downloadedBytes += w.length
    const effect = Effect.forEach(batch, (w) =>
      Effect.either(
        disk.write(
          handle,
          w.piece,
          w.begin,
          w.block,
          w.piece * pieceLength + w.begin + w.length === end ? w.length : undefined
        )
      )
    )
    this.runThen(effect, (exit) => {
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
      } else this.fail(`writing: ${messageOf(exit.cause)}`)
      for (const w of batch) this.maybeHash(w.piece)
      done(exceeded)
    })
  }

  private maybeHash(piece: number): void {
    const state = this.picker.partial.get(piece)
    if (state === undefined || state.hashing || state.missing > 0) return
    state.hashing = true
    this.runThen(this.disk.hash(this.handle, piece), (exit) => {
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
        this.pieces.unsafeOffer(Take.of(piece))
        if (this.picker.complete) {
          this.downloading = false
          // Complete means durable: every file's data and every new file's directory entry.
          this.runThen(this.disk.sync(this.handle), (synced) => {
            if (this.closed) return
            if (Exit.isSuccess(synced)) this.markComplete()
            else this.fail(`syncing the completed download: ${messageOf(synced.cause)}`)
          })
          // Two seeds have nothing to trade.
          for (const c of this.connections) if (c.handshaken && c.isSeed) c.close("both sides are seeds")
        }
      } else {
        if (Exit.isSuccess(exit)) {
          this.hashFailures++
          this.log(`piece ${piece} failed its hash check; fetching it again`)
        } else this.fail(`hashing piece ${piece}: ${messageOf(exit.cause)}`)
        this.runThen(Effect.either(this.disk.clearPiece(this.handle, piece)), () => this.picker.reset(piece))
      }
      for (const c of this.connections) c.fill()
    })
  }

  private markComplete(): void {
    Deferred.unsafeDone(this.completed, Exit.void)
    this.pieces.unsafeOffer(Take.end)
  }

  /** A write or hash failed for a reason other than bad data: stop downloading, keep seeding. */
  private fail(message: string): void {
    // The first stops the download and is the status's `failure`, for the caller to report; the
    // rest (every piece in flight fails the same way) are only counted.
    if (this.errors.length < 100) this.errors.push(message)
    if (this.failure !== undefined) return
    this.failure = message
    this.log(message)
    if (this.downloading) {
      this.downloading = false
      this.log("downloading stopped after a disk error; still serving the pieces we have")
      for (const c of this.connections) if (c.amInterested) c.updateInterest()
    }
  }

  reportError(message: string): void {
    if (this.errors.length < 100) this.errors.push(message)
    this.run(Effect.logWarning(`${this.metainfo.name}: ${message}`))
  }

  whenPoolNormal(f: () => void): void {
    this.poolWaiters.push(f)
    if (this.poolWait !== undefined || this.closed) return
    // It may never end if the pool stays exceeded; close interrupts it.
    const fiber = this.run(this.pool.awaitNormal)
    this.poolWait = fiber
    fiber.addObserver(() => {
      this.poolWait = undefined
      for (const g of this.poolWaiters.splice(0)) g()
    })
  }

  removed(c: Connection): void {
    this.connections.delete(c)
    if (c.remotePeerId !== undefined) {
      const id = Buffer.from(c.remotePeerId).toString("hex")
      if (this.peerIds.get(id) === c) this.peerIds.delete(id)
    }
    this.choker.removed(c)
    if (c.closeReason !== undefined && c.handshaken) this.log(`peer ${c.address} left: ${c.closeReason}`)
    if (!this.closed) for (const other of this.connections) other.fill()
  }

  // ------------------------------------------------------------------------------------------
  // Peers

  add(socket: Net.Socket, outgoing: boolean): Connection | undefined {
    if (this.closed || this.connections.size >= this.options.maxPeers) {
      socket.destroy()
      return undefined
    }
    const c = new Connection(this, socket, outgoing)
    this.connections.add(c)
    return c
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

  /** Keep-alives and dead-peer detection (the session calls it every 30 s). */
  tick(): void {
    const now = this.now()
    for (const c of this.connections) {
      if (now - c.lastReceived > 150_000) c.close("no message for 150 s")
      else if (now - c.lastSent > 60_000) c.send(Wire.encodeKeepAlive())
      if (!c.handshaken && now - c.lastReceived > 20_000) c.close("no handshake within 20 s")
    }
  }

  /** Closes every peer, then waits for the disk batches in flight. */
  get close(): Effect.Effect<void> {
    return Effect.suspend(() => {
      if (this.closed) return Effect.void
      this.closed = true
      for (const c of [...this.connections]) c.close("shutting down")
      const poolWait = this.poolWait
      return (poolWait === undefined ? Effect.void : Fiber.interrupt(poolWait)).pipe(
        Effect.zipRight(this.machinery.awaitIdle),
        Effect.zipRight(
          Effect.sync(() => {
            this.pieces.unsafeOffer(Take.end)
            for (const f of this.poolWaiters.splice(0)) f()
          })
        )
      )
    })
  }
}
