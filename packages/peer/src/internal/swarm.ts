// The state of one torrent's swarm, shared by its connections: the picker, the choker, the rate
// limiter, and the bridge from plain callbacks into Effect (one fiber per batch, in a FiberSet).
//
// A downloaded block: `Connection.fill` asks `pick` for blocks to request; the block's bytes land
// in a pool block (the parser's `blockTarget`); `Connection.onPiece` reports it to `received`
// (the picker's bookkeeping, cancels to other peers in the end game) and queues it; after the
// socket read, `write` sends the batch to DiskIo and, once a piece's blocks are all written,
// `maybeHash` (swarmVerify.ts) verifies it and announces it. Dialing and PEX are swarmPeers.ts,
// initial seeding's hooks swarmSeeding.ts, the 1 s loop and the status swarmStatus.ts.
import type * as Net from "node:net"
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
import * as Schedule from "effect/Schedule"
import type * as Scope from "effect/Scope"
import * as Take from "effect/Take"
import * as Wire from "../Wire.js"
import * as Choker from "./choker.js"
import { Connection } from "./connection.js"
import * as Dialer from "./dialer.js"
import * as Metadata from "./metadata.js"
import * as MseDial from "./mseDial.js"
import * as PeriodicSync from "./periodicSync.js"
import * as Pex from "./pex.js"
import * as Retract from "./retract.js"
import { InitialSeeding } from "./initialSeeding.js"
import { BLOCK, type Pick, Picker } from "./picker.js"
import * as RateLimiter from "./rateLimiter.js"
import { SmartBan } from "./smartBan.js"
import { FirstSends, SuperSeeding } from "./superSeeding.js"
import { CutThrough } from "./cutThrough.js"
import type { BlockWrite, ReadResult, SwarmLink, UploadBudget } from "./swarmLink.js"
import * as Peers from "./swarmPeers.js"
import * as Seeding from "./swarmSeeding.js"
import * as Verify from "./swarmVerify.js"
import * as Upload from "./upload.js"

export interface CoreOptions {
  readonly maxPeers: number
  /** Dial while fewer connections than this (the rest of `maxPeers` is for peers that dial us). */
  readonly dialLimit: number
  /** Exchange peers (BEP 11); off for private torrents (BEP 27). */
  readonly pex: boolean
  readonly requestQueue: number
  readonly downloadQueue: number
  readonly sendBufferBytes: number
  readonly uploadSlots: number
  readonly uploadRateLimit: number
  readonly slowStart: RateLimiter.SlowStart | undefined
  /** A swarm that starts complete refuses ezio peers pieces others have (initialSeeding.ts). */
  readonly initialSeeding: boolean
  /** How connections we open start (mseDial.ts); default plaintext. */
  readonly encryption?: MseDial.Encryption
  /** When a download syncs what it verified before it completes (periodicSync.ts). */
  readonly periodicSync: PeriodicSync.Options
}

/**
 * A piece a peer refused is asked of it again after this long, or, while another (non-seed) peer
 * has it, after the longer time: that peer is where it should come from.
 */
const REFUSED_MS = 5_000
const REFUSED_HELD_MS = 30_000

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
  /** The uploads' pool budget, shared by the session's swarms (upload.ts); a new one if absent. */
  readonly uploads?: UploadBudget
}

type Run = <A, E>(effect: Effect.Effect<A, E>) => Fiber.RuntimeFiber<A, E>

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
    // Both end with the scope, after `close` (finalizers run in reverse).
    yield* Effect.forkScoped(Dialer.run(core.dialer))
    if (params.options.pex)
      yield* Effect.forkScoped(
        Effect.repeat(
          Effect.sync(() => Peers.pexTick(core)),
          Schedule.spaced("1 second")
        )
      )
    if (core.superSeeding !== undefined)
      yield* Effect.forkScoped(
        Effect.repeat(
          Effect.sync(() => Seeding.tick(core)),
          { schedule: Schedule.spaced("500 millis"), while: (more) => more }
        )
      )
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
  /** Where outgoing connections' socket reads land (`connect`); 1 MiB, since 256 KiB made more reads. */
  readonly readBuffer = Buffer.allocUnsafe(1024 * 1024)
  readonly peerIds = new Map<string, Connection>()
  /** The peers we know of and when to dial them. */
  readonly dialer: Dialer.Dialer
  /** Where each connection's peer listens (the address we dialled, or its BEP 10 `p`): its dialer key. */
  readonly listenAddress = new Map<Connection, Peers.ListenAddress>()
  /** The ones we told `ut_pex` about, per peer that speaks it. */
  readonly pexSenders = new Map<Connection, Pex.PexSender>()
  /** Addresses of seeds, not dialled while we are one too. */
  readonly seeds = new Set<string>()
  /** The extensions we speak (BEP 10 `m`), under the ids we receive them with. */
  readonly extensionMap: Readonly<Record<string, number>>
  readonly handle: DiskIo.TorrentHandle
  readonly disk: DiskIo.DiskIoService
  private readonly rate: RateLimiter.RateLimiter
  readonly run: Run
  uploadedBytes = 0
  /** When we last sent a block (only incomplete peers ask for blocks), on the swarm's Clock. */
  lastUploadAt: number | undefined
  downloadedBytes = 0
  /** Bytes received that were not needed (end-game duplicates, blocks cancelled too late). */
  redundantBytes = 0
  /** Initial seeding, while the swarm started complete and some piece has not left it. */
  readonly seeding: InitialSeeding<Connection> | undefined
  /** Super-seeding (BEP 16) of the peers that are not ezio, with `seeding` (superSeeding.ts). */
  readonly superSeeding: SuperSeeding<Connection> | undefined
  /** What left the seeder until every piece had, with `seeding`. */
  readonly firstSends: FirstSends | undefined
  /** Pieces from a seed announced to ezio peers as they arrive (cutThrough.ts). */
  readonly cutThrough: CutThrough
  /** Unsent pieces suggested to each ezio peer at a time: about 4 MiB of them. */
  readonly suggestions: number
  /** The picker's counts of who has each piece (what initial seeding's tail suggests by). */
  get availability(): Uint32Array {
    return this.picker.availability
  }
  hashFailures = 0
  errors: Array<string> = []
  downloading: boolean
  /** The disk error that stopped the download (it would fail again): the first one. */
  failure: string | undefined
  /** Pieces we have but could not read (a failing disk): their requests are dropped. */
  readonly unreadablePieces = new Set<number>()
  closed = false
  /** Who sent bad data; banned peers are closed and not dialled or admitted again. */
  readonly smartBan = new SmartBan()
  readonly bannedIds = new Set<string>()
  readonly periodicSync: PeriodicSync.PeriodicSync
  /** Uploads' share of the pool (the session's, for all its swarms), recomputed as peers come, go and turn interested. */
  readonly uploads: UploadBudget
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
    this.uploads = params.uploads ?? Upload.makeBudget()
    this.run = machinery.run
    this.now = machinery.now
    this.rate = machinery.rate
    this.choker = machinery.choker
    this.pieces = machinery.pieces
    this.completed = machinery.completed
    this.periodicSync = new PeriodicSync.PeriodicSync(params.options.periodicSync)
    const metainfo = params.metainfo
    this.picker = new Picker(metainfo.pieceCount, metainfo.pieceLength, metainfo.totalLength, params.have)
    this.downloading = !this.picker.complete
    this.seeding =
      this.picker.complete && params.options.initialSeeding
        ? new InitialSeeding(metainfo.pieceCount, this.picker.availability, () => true)
        : undefined
    const picker = this.picker
    this.superSeeding =
      this.seeding === undefined
        ? undefined
        : new SuperSeeding(
            this.seeding,
            picker.availability,
            (piece) => picker.has(piece),
            Seeding.announcer,
            () => this.connections
          )
    this.firstSends =
      this.seeding === undefined
        ? undefined
        : new FirstSends(metainfo.pieceCount, (piece) => picker.pieceSize(piece))
    this.cutThrough = new CutThrough(metainfo.pieceCount, (piece) =>
      Math.ceil(picker.pieceSize(piece) / BLOCK)
    )
    this.suggestions = Math.min(32, Math.max(2, Math.ceil((4 * 1024 * 1024) / metainfo.pieceLength) + 1))
    this.updateSendCap()
    if (this.picker.complete) this.markComplete()
    this.dialer = new Dialer.Dialer(
      { maxPeers: params.options.maxPeers, dialLimit: params.options.dialLimit },
      {
        dial: (host, port, address) =>
          this.options.encryption === "prefer" || this.options.encryption === "require"
            ? MseDial.dial(this, host, port, address, this.options.encryption)
            : Peers.dial(this, host, port, address),
        connections: () => this.connections.size,
        wanted: (address) => !this.closed && !(this.picker.complete && this.seeds.has(address))
      },
      machinery.now
    )
    // Every swarm serves its metadata (BEP 9); PEX only where it is allowed.
    this.extensionMap = {
      [Wire.UT_METADATA]: Metadata.LOCAL_METADATA_ID,
      [Retract.EZIO_RETRACT]: Retract.LOCAL_RETRACT_ID,
      ...(params.options.pex ? { ut_pex: Pex.UT_PEX_ID } : {})
    }
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

  get infoBytes(): Uint8Array {
    return this.metainfo.infoBytes
  }

  /** Runs an effect from a callback in the swarm's FiberSet (so `close` waits for it). */
  runThen<A, E>(effect: Effect.Effect<A, E>, onExit: (exit: Exit.Exit<A, E>) => void): void {
    this.run(effect).addObserver(onExit)
  }

  log(message: string): void {
    this.run(Effect.logDebug(`${this.metainfo.name}: ${message}`))
  }

  // ------------------------------------------------------------------------------------------
  // What connections report (SwarmLink)

  admit(c: Connection, peerId: Uint8Array): boolean {
    return Peers.admit(this, c, peerId)
  }

  peerHasPiece(piece: number, bits: Bitfield.Bitfield): void {
    this.picker.addPiece(piece, bits)
    this.superSeeding?.seen(piece, this.now())
  }

  peerIsEzio(c: Connection): void {
    Seeding.suggestTo(this, c)
  }

  hidesPieces(c: Connection): boolean {
    return this.superSeeding?.handshake(c, c.remoteExtensions, this.now()) ?? false
  }

  serves(c: Connection, piece: number): boolean {
    return Seeding.serves(this, c, piece)
  }

  peerBitfield(bits: Bitfield.Bitfield | "all", delta: 1 | -1): void {
    this.picker.addAvailability(bits, delta)
  }

  peerInterested(c: Connection): void {
    this.choker.interested(c)
    this.updateSendCap()
  }

  peerNotInterested(c: Connection): void {
    this.choker.notInterested(c)
    this.updateSendCap()
  }

  /** Re-shares the uploads' pool budget among the peers that want data (upload.ts). */
  updateSendCap(): void {
    let wanting = 0
    for (const c of this.connections) if (c.peerInterested) wanting++
    Upload.shareBudget(this.uploads, this.pool.unsafeStats(), this, wanting, this.options.sendBufferBytes)
  }

  uploadDelay(bytes: number): number {
    return this.rate.take(bytes)
  }

  wakeUpload(delay: number, f: () => void): void {
    this.rate.wake(delay, f)
  }

  uploaded(c: Connection, bytes: number, piece: number): void {
    this.uploadedBytes += bytes
    this.lastUploadAt = this.now()
    if (this.firstSends !== undefined) Seeding.sent(this, c, piece, bytes)
  }

  read(piece: number, begin: number, length: number, done: (result: ReadResult) => void): void {
    const onExit = (exit: Exit.Exit<DiskIo.Read, DiskIo.DiskIoError>) => {
      if (Exit.isSuccess(exit)) return done({ _tag: "Success", read: exit.value })
      // Asking the disk again for every re-request would spin: serve this piece no more.
      if (!Cause.isInterruptedOnly(exit.cause)) this.unreadablePieces.add(piece)
      done({ _tag: "Failure", message: `reading piece ${piece}: ${Verify.messageOf(exit.cause)}` })
    }
    // Without a fiber unless pool blocks need waiting for (an io permit is waited for in plain
    // code); else one in the FiberSet.
    if (this.disk.unsafeReadOwned(this.handle, piece, begin, length, onExit)) return
    this.runThen(this.disk.readOwned(this.handle, piece, begin, length), onExit)
  }

  unreadable(piece: number): boolean {
    return this.unreadablePieces.size > 0 && this.unreadablePieces.has(piece)
  }

  pick(c: Connection, want: number): Array<Pick> {
    const picker = this.picker
    if (c.suggested.length > 0)
      c.suggested = c.suggested.filter((piece) => !picker.has(piece) && !picker.partial.has(piece))
    let peerHas = c.peerHas
    if (c.refused.size > 0) {
      const now = this.now()
      for (const [piece, at] of c.refused) {
        const held = picker.availability[piece]! > picker.seeds
        if (now - at >= (held ? REFUSED_HELD_MS : REFUSED_MS)) c.refused.delete(piece)
      }
      if (c.refused.size > 0) {
        const refused = c.refused
        peerHas = (piece) => c.peerHas(piece) && !refused.has(piece)
      }
    }
    const ban = this.smartBan
    if (ban.suspicious) {
      // A piece that failed goes to one peer at a time, not back at once to a peer that spoiled it.
      const now = this.now()
      const has = peerHas
      peerHas = (piece) => has(piece) && ban.allows(piece, c.address, now)
    }
    return picker.pick(c, peerHas, want, {
      busy: c.outstanding.size,
      seed: c.isSeed,
      suggested: c.suggested,
      suggestedOnly: c.remoteEzio && c.suggested.length > 0 && c.isSeed
    })
  }

  redundant(bytes: number): void {
    this.redundantBytes += bytes
  }

  received(c: Connection, piece: number, begin: number, length: number): boolean {
    const requesters = this.picker.received(c, piece, begin, length)
    if (requesters === undefined) return false
    this.smartBan.sent(piece, begin / BLOCK, c.address, c.lastReceived)
    // End game: the others asked for this block need not send it.
    for (const other of requesters) if (other !== c) other.cancelRequest(piece, begin, length)
    if (c.isSeed) this.cutThrough.fromSeed(piece, this.picker.count)
    return true
  }

  promised(piece: number): boolean {
    return this.cutThrough.isPromised(piece)
  }

  readable(piece: number, begin: number, length: number): boolean {
    return this.picker.has(piece) || this.cutThrough.readable(piece, begin, length)
  }

  whenReadable(piece: number, f: () => void): void {
    this.cutThrough.whenReadable(piece, f)
  }

  /** Pieces whose first blocks from a seed are with the disk: told to the ezio peers lacking them. */
  private announceEarly(pieces: ReadonlyArray<number>): void {
    for (const piece of pieces) {
      const have = Wire.encodeHave(piece)
      for (const c of this.connections)
        if (c.handshaken && c.remoteEzio && !c.isSeed && !c.peerHas(piece)) c.sendSoon(have)
    }
  }

  abandon(c: Connection, piece: number, begin: number): void {
    this.picker.abandon(c, piece, begin)
  }

  unreceive(piece: number, begin: number): void {
    this.picker.unreceive(piece, begin)
    this.cutThrough.forget(piece, begin)
  }

  write(batch: ReadonlyArray<BlockWrite>, done: (exceeded: boolean) => void): void {
    for (let i = 0; i < batch.length; i++) this.downloadedBytes += batch[i]!.length
    // Once per batch, never per block, and on this stack (no fiber): the blocks go as they are
    // (their length is the one the picker checked), no second object per block.
    let exceeded = false
    try {
      const written = this.disk.unsafeWriteMany(this.handle, batch)
      exceeded = written.exceeded
      const cut = this.cutThrough
      if (cut.promisedPieces > 0)
        for (let i = 0; i < batch.length; i++)
          if (cut.isPromised(batch[i]!.piece)) cut.wrote(batch[i]!.piece, batch[i]!.offset)
      for (const { index, error } of written.failures) {
        this.unreceive(batch[index]!.piece, batch[index]!.offset)
        this.fail(`writing piece ${batch[index]!.piece}: ${error.message}`)
      }
    } catch (defect) {
      this.fail(`writing: ${String(defect)}`)
    }
    // Now readable: promised pieces go out (cut-through) and uploads waiting for them go on.
    const promised = this.cutThrough.flush()
    if (promised.length > 0) this.announceEarly(promised)
    let last = -1
    for (const w of batch)
      if (w.piece !== last) {
        last = w.piece
        if (this.cutThrough.waiting) this.cutThrough.wake(last)
        Verify.maybeHash(this, last)
      }
    done(exceeded)
  }

  /** Banned peers and why, for the status. */
  get banned(): Array<string> {
    return [...this.smartBan.banned].map(([peer, reason]) => `${peer}: ${reason}`)
  }

  markComplete(): void {
    Deferred.unsafeDone(this.completed, Exit.void)
    this.pieces.unsafeOffer(Take.end)
  }

  /** A write or hash failed for a reason other than bad data: stop downloading, keep seeding. */
  fail(message: string): void {
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
    const fiber = this.run(this.disk.awaitWritable)
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
      if (c.handshaken) this.dialer.peerDisconnected(id)
    }
    Peers.forgetPeer(this, c)
    this.choker.removed(c)
    this.smartBan.left(c.address)
    if (c.peerInterested) this.updateSendCap()
    this.seeding?.removed(c)
    this.superSeeding?.removed(c)
    if (c.closeReason !== undefined && c.handshaken) this.log(`peer ${c.address} left: ${c.closeReason}`)
    if (!this.closed) for (const other of this.connections) other.fill()
  }

  // ------------------------------------------------------------------------------------------
  // Peers

  add(socket: Net.Socket, outgoing: boolean): Connection | undefined {
    if (
      this.closed ||
      this.smartBan.isBanned(`${socket.remoteAddress}:${socket.remotePort}`) ||
      (this.connections.size >= this.options.maxPeers && !Peers.makeRoom(this))
    ) {
      socket.destroy()
      return undefined
    }
    const c = new Connection(this, socket, outgoing)
    this.connections.add(c)
    return c
  }

  /**
   * A peer to connect to (from a tracker, the user, PEX): the dialer dials it at once if there is
   * room, and again with backoff when the dial fails or the connection is lost. Banned peers never.
   */
  connect(host: string, port: number, source: Dialer.PeerSource = "manual"): void {
    if (this.closed || this.smartBan.isBanned(`${host}:${port}`)) return
    this.dialer.add(host, port, source)
  }

  /** The peer's extension handshake: its listen port (a dialer address) and its `ut_pex` id. */
  extensionHandshake(c: Connection, handshake: Wire.ExtensionHandshake): void {
    Peers.extensionHandshake(this, c, handshake)
    this.superSeeding?.identified(c, handshake.ezio !== undefined, this.now())
  }

  /** An extended message other than the handshake, under one of the ids in `extensionMap`. */
  extended(c: Connection, id: number, payload: Uint8Array): void {
    if (id === Pex.UT_PEX_ID && this.options.pex) Peers.pexReceived(this, c, payload)
    else if (id === Retract.LOCAL_RETRACT_ID && c.remoteEzio) Retract.received(this, c, payload)
  }

  /** Closes every peer, then waits for the disk batches in flight. */
  get close(): Effect.Effect<void> {
    return Effect.suspend(() => {
      if (this.closed) return Effect.void
      this.closed = true
      for (const c of [...this.connections]) c.close("shutting down")
      this.uploads.wanting.delete(this)
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
