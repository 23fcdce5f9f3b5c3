// One peer connection: plain JS over a node:net socket. Per-message work (frame parsing, request
// bookkeeping, a corked write of header + pool block) stays on the event loop without Effect;
// disk work goes through DiskIo as ONE Effect per batch of requests or received blocks.
//
// A connection reaches its swarm only through `SwarmLink` (swarmLink.ts); its upload side (the
// requests it serves) is upload.ts.
import type * as Net from "node:net"
import type { BufferPool } from "@ezio/pool"
import { Bitfield } from "@ezio/storage"
import * as Wire from "../Wire.js"
import * as Metadata from "./metadata.js"
import * as Retract from "./retract.js"
import { BLOCK, type Pick as PickedBlock } from "./picker.js"
import type * as Link from "./swarmLink.js"
import { Upload } from "./upload.js"
import { copyInto } from "./wire/copy.js"

type SwarmLink = Link.SwarmLink<Connection>

const NO_BITS = new Uint8Array(0)

let nextId = 1

export class Connection {
  readonly id = nextId++
  readonly address: string
  closed = false
  closeReason: string | undefined
  handshaken = false
  remotePeerId: Uint8Array | undefined
  remoteFast = false
  remoteExtensions = false
  remoteClient: string | undefined
  remoteReqq = 250
  /** The peer's id for ut_metadata (BEP 9); 0 if it does not speak it. */
  remoteMetadataId = 0
  /** The peer's id for ezio_retract (retract.ts); 0 if it does not speak it. */
  remoteRetractId = 0
  /** The peer is ezio (its extension handshake says so) and follows ezio's piece flow. */
  remoteEzio = false

  // What the remote has.
  readonly bits: Bitfield.Bitfield
  hasAll = false
  private bitsCounted = false

  // Upload side.
  amChoking = true
  peerInterested = false
  uploaded = 0
  /** The requests we serve this peer and the blocks on their way to it (upload.ts). */
  readonly upload: Upload<Connection>

  // Download side.
  peerChoking = true
  amInterested = false
  readonly outstanding = new Map<number, PickedBlock>()
  downloaded = 0
  /** Requests kept outstanding: the swarm sizes it to this peer's rate (swarmStatus.ts `sampleRates`). */
  requestDepth: number
  /** Received bytes per second, smoothed, and `downloaded` when last sampled. */
  rate = 0
  downloadedAtSample = 0
  /** Pieces the peer suggested (BEP 6), asked for first. */
  suggested: Array<number> = []
  /** Pieces an ezio peer refused (initial seeding), and when: not asked of it again for a while. */
  readonly refused = new Map<number, number>()
  private target: BufferPool.Block | undefined
  private writeBatch: Array<Link.BlockWrite> = []
  /**
   * Messages not yet written (requests, HAVEs): one socket write per event-loop turn for all of
   * them, in the order queued, before anything `send` writes.
   */
  private queuedOut: Array<Uint8Array> = []
  private flushPending = false
  private readonly flushNow = (): void => {
    this.flushPending = false
    this.flushWrites()
    this.writeQueued()
  }

  lastReceived: number
  lastSent: number
  readonly connectedAt: number
  /** When a block last went either way (admission.ts). */
  lastPayload: number
  /** The peer sent a message since its handshake, keep-alives aside (admission.ts). */
  private spoke = false
  /** When its last message other than a keep-alive came (upload.ts, initialSeeding.ts). */
  lastHeard: number
  private parser: Wire.FrameParser | undefined
  private pausedForPool = false
  private pausedForDisk = false

  constructor(
    readonly swarm: SwarmLink,
    readonly socket: Net.Socket,
    readonly outgoing: boolean
  ) {
    this.address = `${socket.remoteAddress}:${socket.remotePort}`
    this.bits = Bitfield.make(swarm.picker.pieceCount)
    this.requestDepth = swarm.options.downloadQueue
    this.lastReceived = this.lastSent = this.connectedAt = this.lastPayload = this.lastHeard = swarm.now()
    this.upload = new Upload(this)
    socket.setNoDelay(true)
    socket.on("error", (error) => this.close(`socket error: ${error.message}`))
    socket.on("close", () => this.close("the peer closed the connection"))
    socket.on("drain", () => this.upload.pump())
  }

  // ------------------------------------------------------------------------------------------
  // Start

  /**
   * Outgoing: send our handshake (unless MSE sent it as its initial payload), then parse theirs
   * from the stream (the swarm's `onread` feeds `receive`).
   */
  startOutgoing(handshakeSent = false): void {
    this.parser = this.makeParser(true)
    if (!handshakeSent) this.send(this.swarm.handshakeBytes)
  }

  /** Incoming: the session already read their handshake (and maybe more bytes). */
  startIncoming(handshake: Wire.Handshake, rest: Uint8Array): void {
    this.send(this.swarm.handshakeBytes)
    this.adopt(handshake, rest)
  }

  /**
   * Both handshakes were exchanged already (by a magnet's metadata fetch): `rest` holds the
   * frames the peer sent since, and the socket, paused, delivers the rest.
   */
  adopt(handshake: Wire.Handshake, rest: Uint8Array): void {
    this.parser = this.makeParser(false)
    this.onHandshake(handshake)
    this.socket.on("data", (chunk: Buffer) => this.receive(chunk))
    if (rest.length > 0 && !this.closed) this.receive(rest)
  }

  private makeParser(handshake: boolean): Wire.FrameParser {
    return new Wire.FrameParser(
      {
        onHandshake: (h) => this.onHandshake(h),
        onMessage: (m) => this.onMessage(m),
        // Blocks skip the message object and the switch: one call per 16 KiB received.
        onPiece: (index, begin, block) => {
          if (this.closed) return
          if (!this.handshaken) return this.close("a message before the handshake")
          this.spoke = true
          this.lastHeard = this.lastReceived
          this.onPiece(index, begin, block)
        }
      },
      {
        handshake,
        pieces: this.swarm.picker.pieceCount,
        // Blocks we asked for stream straight into a pool block: no intermediate copy.
        blockTarget: (piece, begin, length) => {
          if (!this.outstanding.has(this.swarm.picker.blockKey(piece, begin)) || length > BLOCK)
            return undefined
          const block = this.swarm.pool.unsafeTryAcquire("write")
          this.target = block
          return block?.bytes
        }
      }
    )
  }

  private onHandshake(handshake: Wire.Handshake): void {
    if (Buffer.compare(handshake.infoHash, this.swarm.infoHash) !== 0)
      return this.close("wrong info-hash in the handshake")
    if (Buffer.compare(handshake.peerId, this.swarm.peerId) === 0) return this.close("connected to ourselves")
    if (!this.swarm.admit(this, handshake.peerId)) return this.close("already connected to this peer")
    this.handshaken = true
    this.remotePeerId = handshake.peerId
    this.remoteFast = handshake.fast
    this.remoteExtensions = handshake.extensions
    this.socket.cork()
    if (this.remoteExtensions)
      this.send(
        Wire.encodeExtensionHandshake({
          m: this.swarm.extensionMap,
          metadataSize: this.swarm.infoBytes.length,
          v: "ezio 0.1.0",
          reqq: this.swarm.options.requestQueue,
          ezio: 1,
          ...(this.swarm.listenPort > 0 ? { p: this.swarm.listenPort } : {})
        })
      )
    // Super-seeding (superSeeding.ts) tells a peer what we have itself.
    if (!this.swarm.hidesPieces(this)) this.advertise()
    this.socket.uncork()
  }

  /** Tells the peer every piece we have (bitfield, have_all or have_none). */
  advertise(): void {
    const picker = this.swarm.picker
    if (this.remoteFast && picker.complete) this.send(Wire.encode({ _tag: "HaveAll" }))
    else if (this.remoteFast && picker.count === 0) this.send(Wire.encode({ _tag: "HaveNone" }))
    else this.send(Wire.encodeBitfield(picker.have.bytes))
  }

  // ------------------------------------------------------------------------------------------
  // Receive

  /**
   * Bytes from the socket, from its "data" events or, when it reads into a reused buffer
   * (`onread`), from that callback: consumed synchronously, nothing keeps a view of `chunk`.
   */
  receive(chunk: Uint8Array): void {
    if (this.closed) return
    this.lastReceived = this.swarm.now()
    let error: Wire.WireError | undefined
    try {
      error = this.parser!.feed(chunk)
    } catch (cause) {
      return this.close(`internal error: ${String(cause)}`)
    }
    if (error !== undefined) return this.close(`protocol error: ${error.message}`)
    if (this.closed) return
    // One write batch per event-loop turn, not per socket read: libuv hands over several reads in
    // a row while the socket has more, and each batch costs the swarm an Effect.
    if (this.writeBatch.length > 0) this.flushSoon()
    this.upload.pump()
    this.fill()
    // Backpressure: past the pool's high watermark, stop reading new requests and blocks from
    // this socket until the pool is back to normal (libtorrent's disk_observer).
    if (this.swarm.pool.unsafeIsExceeded() && !this.pausedForPool) {
      this.pausedForPool = true
      this.socket.pause()
      this.swarm.whenPoolNormal(() => {
        this.pausedForPool = false
        if (!this.closed && !this.pausedForDisk) this.socket.resume()
      })
    }
  }

  private onMessage(message: Wire.Message): void {
    if (this.closed) return
    if (!this.handshaken && message._tag !== "KeepAlive") return this.close("a message before the handshake")
    if (message._tag !== "KeepAlive") {
      this.spoke = true
      this.lastHeard = this.lastReceived
    }
    switch (message._tag) {
      case "KeepAlive":
        return
      case "Choke":
        this.peerChoking = true
        // Without the fast extension, choking cancels every request; with it, rejects come.
        if (!this.remoteFast) this.abandonAll()
        return
      case "Unchoke":
        this.peerChoking = false
        return
      case "Interested":
        this.peerInterested = true
        this.swarm.peerInterested(this)
        return
      case "NotInterested":
        this.peerInterested = false
        this.swarm.peerNotInterested(this)
        return
      case "Have":
        return this.onHave(message.index)
      case "Bitfield":
        return this.onBitfield(message.bits)
      case "HaveAll":
        return this.onHaveAll()
      case "HaveNone":
        return this.onBitfield(NO_BITS)
      case "Request":
        return this.upload.request(message.index, message.begin, message.length)
      case "Cancel":
        return this.upload.cancel(message.index, message.begin, message.length)
      case "RejectRequest": {
        const k = this.swarm.picker.blockKey(message.index, message.begin)
        if (this.outstanding.delete(k)) {
          // Unchoked, an ezio peer refuses a piece another peer can give us (initial seeding).
          if (this.remoteEzio && !this.peerChoking) this.refused.set(message.index, this.swarm.now())
          this.swarm.abandon(this, message.index, message.begin)
        }
        return
      }
      case "Suggest":
        // An ezio seeder suggests a piece it refused when it will serve it after all (its tail).
        this.refused.delete(message.index)
        if (this.suggested.length < 64 && message.index < this.swarm.picker.pieceCount)
          this.suggested.push(message.index)
        return
      case "Piece":
        return this.onPiece(message.index, message.begin, message.block)
      case "Extended":
        if (message.extendedId === 0) {
          const decoded = Wire.decodeExtensionHandshake(message.payload)
          if (decoded._tag === "Right") {
            if (decoded.right.v !== undefined) this.remoteClient = decoded.right.v
            if (decoded.right.reqq !== undefined && decoded.right.reqq > 0)
              this.remoteReqq = Math.min(decoded.right.reqq, 2000)
            this.remoteMetadataId = decoded.right.m[Wire.UT_METADATA] ?? 0
            this.remoteRetractId = decoded.right.m[Retract.EZIO_RETRACT] ?? 0
            this.swarm.extensionHandshake(this, decoded.right)
            if (decoded.right.ezio !== undefined && !this.remoteEzio) {
              this.remoteEzio = true
              this.swarm.peerIsEzio(this)
            }
          }
        } else if (message.extendedId === Metadata.LOCAL_METADATA_ID) {
          const busy = this.socket.writableLength >= this.swarm.options.sendBufferBytes
          const reply = Metadata.answer(this.swarm.infoBytes, this.remoteMetadataId, message.payload, busy)
          if (reply !== undefined) this.send(reply)
        } else this.swarm.extended(this, message.extendedId, message.payload)
        return
      default:
        return
    }
  }

  private onHave(index: number): void {
    if (index >= this.swarm.picker.pieceCount)
      return this.close(`have for piece ${index}, past the last piece`)
    if (this.hasAll || Bitfield.has(this.bits, index)) return
    Bitfield.set(this.bits, index)
    this.swarm.peerHasPiece(index, this.bits)
    this.updateInterest()
  }

  private onBitfield(bytes: Uint8Array): void {
    if (this.bitsCounted) this.swarm.peerBitfield(this.hasAll ? "all" : this.bits, -1)
    this.hasAll = false
    Bitfield.assign(this.bits, bytes)
    this.swarm.peerBitfield(this.bits, 1)
    this.bitsCounted = true
    this.updateInterest()
  }

  private onHaveAll(): void {
    if (this.bitsCounted) this.swarm.peerBitfield(this.hasAll ? "all" : this.bits, -1)
    this.hasAll = true
    Bitfield.setAll(this.bits)
    this.swarm.peerBitfield("all", 1)
    this.bitsCounted = true
    this.updateInterest()
  }

  readonly peerHas = (piece: number): boolean => this.hasAll || Bitfield.has(this.bits, piece)

  /** Pieces the peer has. */
  pieceCount(): number {
    return this.hasAll ? this.swarm.picker.pieceCount : Bitfield.count(this.bits)
  }

  get isSeed(): boolean {
    return this.hasAll || Bitfield.isComplete(this.bits)
  }

  updateInterest(): void {
    const picker = this.swarm.picker
    let wants = false
    if (!picker.complete && this.swarm.downloading) {
      for (let i = 0; i < picker.pieceCount; i++)
        if (!picker.has(i) && this.peerHas(i)) {
          wants = true
          break
        }
    }
    if (wants !== this.amInterested) {
      this.amInterested = wants
      this.send(Wire.encode({ _tag: wants ? "Interested" : "NotInterested" }))
    }
  }

  /** Handshaken, and not a word since (admission.ts): a peer that wants nothing of us. */
  get silent(): boolean {
    return this.handshaken && !this.spoke
  }

  /** Once a second: a peer silent past the upload's quiet limit gets a little more (upload.ts). */
  trickleUpload(): void {
    this.upload.trickle()
  }

  /** Called periodically: closes the connection if the peer stopped reading (upload.ts). */
  checkSendProgress(now: number, stallMs: number): void {
    this.upload.checkSendProgress(now, stallMs)
  }

  // ------------------------------------------------------------------------------------------
  // Download: requests from the picker; received blocks (already in pool blocks) go to DiskIo as
  // one batch per socket read; a piece is hashed once all its blocks are in the store buffer.

  /** We have requests of this peer not answered yet (initialSeeding.ts's `Holder`). */
  get owed(): boolean {
    return this.upload.owed
  }

  fill(): void {
    if (this.closed || this.peerChoking || !this.amInterested || !this.swarm.downloading) return
    const depth = Math.min(this.requestDepth, this.remoteReqq)
    const want = depth - this.outstanding.size
    // Refill in batches of a quarter of the queue: each socket write costs tens of µs of main
    // thread on loopback whatever its size, so one per received block would be a wall.
    if (want <= 0 || (want < depth >> 2 && this.outstanding.size > 0)) return
    const picks = this.swarm.pick(this, want)
    if (picks.length === 0) return
    // All the requests in one buffer: one socket write instead of one per 17-byte message.
    const out = Buffer.allocUnsafe(picks.length * 17)
    let at = 0
    for (const p of picks) {
      this.outstanding.set(this.swarm.picker.blockKey(p.piece, p.begin), p)
      out.writeUInt32BE(13, at)
      out[at + 4] = Wire.MessageId.Request
      out.writeUInt32BE(p.piece, at + 5)
      out.writeUInt32BE(p.begin, at + 9)
      out.writeUInt32BE(p.length, at + 13)
      at += 17
    }
    this.sendSoon(out)
  }

  private flushSoon(): void {
    if (this.flushPending) return
    this.flushPending = true
    setImmediate(this.flushNow)
  }

  /** Queues `bytes` for this turn's one write (a HAVE of a piece verified: several per turn at speed). */
  sendSoon(bytes: Uint8Array): void {
    if (this.closed) return
    this.queuedOut.push(bytes)
    this.flushSoon()
  }

  private writeQueued(): void {
    if (this.queuedOut.length === 0 || this.closed) return
    const out = this.queuedOut.length === 1 ? this.queuedOut[0]! : Buffer.concat(this.queuedOut)
    this.queuedOut = []
    this.lastSent = this.swarm.now()
    this.socket.write(out)
  }

  private onPiece(piece: number, begin: number, data: Uint8Array): void {
    let block = this.target
    this.target = undefined
    // Not requested (or cancelled in the end game), or not wanted any more: drop it.
    if (
      !this.outstanding.delete(this.swarm.picker.blockKey(piece, begin)) ||
      !this.swarm.received(this, piece, begin, data.length)
    ) {
      if (block !== undefined) block.release()
      this.swarm.redundant(data.length)
      return
    }
    if (block === undefined) {
      // The pool had no block free when the header arrived: copy into one now if we can.
      block = this.swarm.pool.unsafeTryAcquire("write")
      if (block === undefined) {
        this.swarm.unreceive(piece, begin)
        return
      }
      copyInto(block.bytes, data)
    }
    this.downloaded += data.length
    this.lastPayload = this.lastReceived
    this.writeBatch.push({ piece, offset: begin, block, length: data.length })
  }

  private flushWrites(): void {
    if (this.writeBatch.length === 0) return
    const batch = this.writeBatch
    this.writeBatch = []
    this.swarm.write(batch, (exceeded) => {
      if (exceeded && !this.closed && !this.pausedForDisk) {
        this.pausedForDisk = true
        this.socket.pause()
        this.swarm.whenPoolNormal(() => {
          this.pausedForDisk = false
          if (!this.closed && !this.pausedForPool) this.socket.resume()
        })
      }
    })
  }

  /** Another peer sent this block first (end game): ask this one no more. */
  cancelRequest(piece: number, begin: number, length: number): void {
    if (this.outstanding.delete(this.swarm.picker.blockKey(piece, begin)))
      this.send(Wire.encodeCancel(piece, begin, length))
  }

  private abandonAll(): void {
    for (const p of this.outstanding.values()) this.swarm.abandon(this, p.piece, p.begin)
    this.outstanding.clear()
  }

  // ------------------------------------------------------------------------------------------

  choke(): void {
    if (this.amChoking || this.closed) return
    this.amChoking = true
    this.send(Wire.encode({ _tag: "Choke" }))
    this.upload.choked()
  }

  unchoke(): void {
    if (!this.amChoking || this.closed) return
    this.amChoking = false
    this.send(Wire.encode({ _tag: "Unchoke" }))
    this.upload.pump()
  }

  send(bytes: Uint8Array): void {
    if (this.closed) return
    // After the requests still waiting for this turn's write: a cancel never overtakes its request.
    this.writeQueued()
    this.lastSent = this.swarm.now()
    this.socket.write(bytes)
  }

  close(reason: string): void {
    if (this.closed) return
    this.closed = true
    this.closeReason = reason
    this.socket.destroy()
    if (this.target !== undefined) {
      this.target.release()
      this.target = undefined
    }
    for (const { block } of this.writeBatch) block.release()
    this.writeBatch = []
    this.queuedOut = []
    this.upload.close()
    this.abandonAll()
    if (this.bitsCounted) this.swarm.peerBitfield(this.hasAll ? "all" : this.bits, -1)
    this.bitsCounted = false
    this.swarm.removed(this)
  }
}
