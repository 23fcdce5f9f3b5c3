// A connection's upload side: requests → DiskIo.readOwned (one Effect per run of blocks, through
// the swarm's `read`) → corked header + block writes straight from pool blocks, released in the
// socket's write callbacks. Plain JS per request and per block; the connection owns one.
//
// A peer that stops reading is invisible from here until the kernel's buffers for its socket are
// full (megabytes each on a fast link): dozens of such peers took as much of the seeder as a real
// download. A peer that reads asks for more (or announces a piece) as blocks come in, so once
// `quietBytes` went to a peer that has said nothing for `QUIET_MS`, it gets `TRICKLE_BYTES` a
// second (`trickle`) until it speaks again: a slow or finishing peer is slowed, never stopped.
//
// What one connection has queued (bytes Node holds for its socket plus reads in flight) is capped
// by time, as libtorrent's send buffer watermark is: `sendLimit` of the rate the socket takes
// bytes at. Everything else we send the peer (HAVEs, cancels, our own requests when we download
// from it too) waits behind that queue, and on a slow link a fixed megabytes-deep one is seconds.
// The socket taking bytes (its write callbacks) refills the queue, so reads overlap the sending.
//
// Of that queue Node's socket holds only `socketQueue` (a few ms of the rate); the rest of the
// pieces read wait here, in the outbox, a whole message at a time. So what the connection sends
// besides pieces (our requests when we download from the peer too, HAVEs, cancels) waits behind a
// few ms of data and the kernel's buffer, not behind the whole queue: a target whose uplink is
// full, relaying pieces to every other, still asks its peers for more as soon as it can use it.
import type * as Net from "node:net"
import type { BufferPool } from "@ezio/pool"
import * as Wire from "../Wire.js"
import { BLOCK, type Requester } from "./picker.js"
import type { SwarmLink, UploadBudget } from "./swarmLink.js"

/** What the upload side needs of its connection. */
export interface UploadPeer<C extends Requester> extends Requester {
  readonly swarm: SwarmLink<C>
  readonly socket: Net.Socket
  readonly closed: boolean
  readonly remoteFast: boolean
  readonly amChoking: boolean
  uploaded: number
  lastSent: number
  /** When the peer's last message other than a keep-alive came. */
  readonly lastHeard: number
  lastPayload: number
  readonly send: (bytes: Uint8Array) => void
  readonly close: (reason: string) => void
}

/** The pool bytes one peer's uploads may always hold, whatever the others hold. */
const UPLOAD_FLOOR = 256 * 1024

/** A swarm's uploads' budget before `shareBudget` first sizes it. */
export const makeBudget = (): UploadBudget => ({
  held: 0,
  floor: UPLOAD_FLOOR,
  perPeer: UPLOAD_FLOOR,
  limit: 0,
  wanting: new Map()
})

/**
 * Uploads, of every swarm sharing the budget (a session's), may hold half the pool below its high
 * watermark, shared among the peers that want data (each at most what it could hold without a
 * budget: its send buffer and four 1 MiB reads). `swarm` now has `wanting` such peers (0 when it
 * closes).
 */
export const shareBudget = (
  budget: UploadBudget,
  pool: BufferPool.Stats,
  swarm: object,
  wanting: number,
  sendBufferBytes: number
): void => {
  if (wanting > 0) budget.wanting.set(swarm, wanting)
  else budget.wanting.delete(swarm)
  let total = 0
  for (const n of budget.wanting.values()) total += n
  const limit = Math.floor((pool.highWatermarkBlocks * pool.blockSize) / 2)
  budget.limit = limit
  budget.perPeer = Math.max(
    UPLOAD_FLOOR,
    Math.min(sendCeiling(sendBufferBytes), Math.floor(limit / Math.max(1, total)))
  )
}

interface QueuedRequest {
  readonly piece: number
  readonly begin: number
  readonly length: number
}

/** Most invalid requests (past the end, for pieces we lack, while choked) before we hang up. */
const MAX_INVALID = 300
/** Largest request we serve; 16 KiB is what every client sends, some older ones ask for 32 KiB. */
const MAX_REQUEST = 128 * 1024
/** Blocks read per DiskIo call: a run of contiguous requests in one piece. */
const MAX_BATCH_BYTES = 1024 * 1024
/** Reads in flight per connection. */
const MAX_READS = 4
/** Bytes sent to a peer since its last message past which, once it has been silent `QUIET_MS`, it is trickled. */
export const QUIET_BYTES = 1024 * 1024
/**
 * The quiet limit for a torrent: at least two pieces, since a peer that reads announces each piece
 * it completes, and the last blocks of a big piece may take more than `QUIET_MS` on a slow link
 * after it has requested everything (at the end of a download it has nothing more to ask).
 */
export const quietBytes = (pieceLength: number): number => Math.max(QUIET_BYTES, 2 * pieceLength)
/** A peer silent this long, past its quiet limit, is not reading (also initialSeeding.ts). */
export const QUIET_MS = 1_000
/** What a silent peer past its quiet limit is sent a second. */
export const TRICKLE_BYTES = 64 * 1024

/** Queued requests looked through for one to serve while the first waits for its blocks. */
const READY_SCAN = 512
/** Longest a request waits for a block of a piece announced before it was in (cutThrough.ts). */
export const PROMISE_WAIT_MS = 20_000

/** The time's worth of its upload rate one connection may have queued. */
export const SEND_QUEUE_MS = 1000
/** What a connection may always have queued, however slow it is. */
export const SEND_QUEUE_FLOOR = 512 * 1024
/** The time's worth of its upload rate Node's socket may hold of a connection's queue (the rest waits in the outbox). */
export const SOCKET_QUEUE_MS = 10
/** What the socket may always hold, however slow it is. */
export const SOCKET_QUEUE_FLOOR = 64 * 1024
/** How often a connection's upload rate is measured. */
export const RATE_WINDOW_MS = 100

/** The most one connection may have queued: its send buffer (the option) and its reads in flight. */
export const sendCeiling = (sendBufferBytes: number): number => sendBufferBytes + MAX_READS * MAX_BATCH_BYTES

/**
 * What one connection may have queued (socket and reads in flight) at `rate` bytes a second: its
 * rate's `SEND_QUEUE_MS`, at least `SEND_QUEUE_FLOOR`, at most `ceiling` (`sendCeiling`). A queue
 * that keeps a link busy lets the rate measured grow, and the limit with it.
 */
export const sendLimit = (rate: number, ceiling: number): number =>
  Math.min(ceiling, Math.max(SEND_QUEUE_FLOOR, Math.floor((rate * SEND_QUEUE_MS) / 1000)))

/** A piece message read and not yet handed to the socket: its header and block views, in order. */
interface OutMessage {
  readonly parts: Array<Uint8Array>
  /** The block each part ends (released once the socket has taken it), or undefined. */
  readonly ends: Array<BufferPool.Block | undefined>
  /** Each such block's bytes sent (its view's length), for the rate measured. */
  readonly sizes: Array<number>
  readonly bytes: number
}

export class Upload<C extends UploadPeer<C>> {
  private readonly requests: Array<QueuedRequest> = []
  /** Piece messages read, waiting for room in the socket (`socketQueue`); from `outHead` on. */
  private outbox: Array<OutMessage> = []
  private outHead = 0
  private outboxBytes = 0
  private readsInFlight = 0
  /** Pool blocks the reads in flight will fill: with `sending`, what this peer holds of the pool. */
  private readBlocks = 0
  /** Bytes the reads in flight will send. */
  private readBytes = 0
  /** `pump` stopped at the cap: the next block the socket takes restarts it. */
  private capped = false
  /** `pump` stopped at the send limit: a block the socket takes restarts it once below. */
  private full = false
  /** What this connection may have queued now (`sendLimit`); its send buffer until first measured. */
  private limit: number
  /** The least room under `limit` worth a read: reads stay big while the socket takes block by block. */
  private minRoom: number
  /** The upload rate measured, bytes a second, and the bytes the socket took since `rateAt`. */
  private rate = 0
  private took = 0
  private rateAt: number
  private readonly sending = new Set<BufferPool.Block>()
  private invalid = 0
  /** The promised piece whose next block the first request waits for (-1: none), and since when. */
  private awaiting = -1
  private awaitingSince = 0
  /** The piece whose blocks will wake `pump` (-1: none). */
  private awaitRegistered = -1
  /** Bytes sent since the peer's message at `heardAt` (its `lastHeard` then). */
  private sentSinceHeard = 0
  private heardAt = -1
  /** `pump` stopped at the quiet limit: `trickle` lets a little more go. */
  private hushed = false
  /** This torrent's quiet limit (`quietBytes`). */
  private readonly quiet: number
  // Send progress: a socket whose queue holds bytes and neither shrinks nor flushes is stuck.
  private flushed = 0
  private flushedSeen = 0
  private queuedSeen = 0
  private sendProgressAt: number

  constructor(private readonly peer: C) {
    this.sendProgressAt = this.rateAt = peer.swarm.now()
    this.quiet = quietBytes(peer.swarm.picker.pieceSize(0))
    this.limit = peer.swarm.options.sendBufferBytes
    this.minRoom = MAX_BATCH_BYTES
  }

  /** Requests of the peer we have not answered yet: it is waiting on us. */
  get owed(): boolean {
    return this.requests.length > 0 || this.readBytes > 0
  }

  /** What this connection has queued: bytes its socket holds, its outbox and bytes being read for it. */
  get backlog(): number {
    return this.peer.socket.writableLength + this.outboxBytes + this.readBytes
  }

  /** What Node's socket may hold of the queue: a few ms of the rate, at least `SOCKET_QUEUE_FLOOR`. */
  get socketQueue(): number {
    return Math.max(SOCKET_QUEUE_FLOOR, Math.floor((this.rate * SOCKET_QUEUE_MS) / 1000))
  }

  /** What it may have queued now (`sendLimit` of its measured rate). */
  get sendLimit(): number {
    return this.limit
  }

  /**
   * Once a window: the rate the socket took bytes at. It falls at most by half a window, so a
   * window with little asked does not empty a fast link's queue.
   */
  private measure(now: number): void {
    // Until its first bytes go, a connection's rate is unknown: it may queue its send buffer.
    if (this.took === 0 && this.rate === 0) {
      this.rateAt = now
      return
    }
    const elapsed = now - this.rateAt
    if (elapsed < RATE_WINDOW_MS) return
    this.rate = Math.max((this.took * 1000) / elapsed, this.rate * 0.5 ** (elapsed / RATE_WINDOW_MS))
    this.took = 0
    this.rateAt = now
    this.limit = sendLimit(this.rate, sendCeiling(this.peer.swarm.options.sendBufferBytes))
    this.minRoom = Math.min(MAX_BATCH_BYTES, this.limit >> 2)
  }

  private rejectOrDrop(piece: number, begin: number, length: number): void {
    if (this.peer.remoteFast) this.peer.send(Wire.encodeRejectRequest(piece, begin, length))
  }

  request(piece: number, begin: number, length: number): void {
    const peer = this.peer
    const swarm = peer.swarm
    // Dropped, not rejected: a reject brings the same request straight back.
    if (swarm.unreadable(piece)) return
    const picker = swarm.picker
    const valid =
      piece < picker.pieceCount &&
      (picker.has(piece) || swarm.promised(piece)) &&
      length > 0 &&
      length <= MAX_REQUEST &&
      begin + length <= picker.pieceSize(piece)
    if (!valid || peer.amChoking) {
      this.rejectOrDrop(piece, begin, length)
      if (!valid && ++this.invalid > MAX_INVALID)
        peer.close(`more than ${MAX_INVALID} invalid requests (last: piece ${piece}, ${begin}+${length})`)
      return
    }
    if (this.requests.length >= swarm.options.requestQueue) {
      // A flood past the queue depth we advertised: refuse the excess instead of queueing it.
      this.rejectOrDrop(piece, begin, length)
      if (++this.invalid > MAX_INVALID) peer.close("request flood past the advertised queue depth")
      return
    }
    // Initial seeding: a piece another peer already has or is getting goes from that peer.
    if (!swarm.serves(peer, piece)) return this.rejectOrDrop(piece, begin, length)
    this.requests.push({ piece, begin, length })
  }

  /** Requests waiting to be served. */
  get queued(): number {
    return this.requests.length
  }

  cancel(piece: number, begin: number, length: number): void {
    const i = this.requests.findIndex((r) => r.piece === piece && r.begin === begin && r.length === length)
    if (i >= 0) this.requests.splice(i, 1)
  }

  /** We choked the peer: its queued requests are rejected (fast extension) or dropped. */
  choked(): void {
    if (this.peer.remoteFast)
      for (const r of this.requests) this.peer.send(Wire.encodeRejectRequest(r.piece, r.begin, r.length))
    this.requests.length = 0
  }

  /**
   * Serves queued requests while the socket keeps up, the rate limit allows, and this peer holds
   * less of the pool (reads in flight and blocks the socket has not taken) than its share.
   */
  pump(): void {
    const peer = this.peer
    const swarm = peer.swarm
    if (peer.lastHeard !== this.heardAt) {
      this.heardAt = peer.lastHeard
      this.sentSinceHeard = 0
    }
    this.measure(swarm.now())
    this.flushOutbox()
    while (!peer.closed && this.requests.length > 0 && !peer.amChoking && this.readsInFlight < MAX_READS) {
      const room = this.limit - this.backlog
      if (room < this.minRoom) {
        this.full = true
        return
      }
      const held = (this.sending.size + this.readBlocks) * BLOCK
      const budget = swarm.uploads
      const cap = budget.perPeer
      if (held > 0 && (held >= cap || (held >= budget.floor && budget.held >= budget.limit))) {
        this.capped = true
        return
      }
      let quota = this.quiet - this.sentSinceHeard
      if (quota <= 0 && swarm.now() - peer.lastHeard >= QUIET_MS) {
        this.hushed = true
        return
      }
      if (quota <= 0) quota = MAX_BATCH_BYTES
      // A run of contiguous requests within one piece becomes one read; of a piece we announced
      // before having it (cutThrough.ts), only the blocks already in. Blocks not in yet are waited
      // for, and what is behind them is served meanwhile (a peer behind asks for older pieces too).
      let at = 0
      let first = this.requests[0]!
      let whole = swarm.picker.has(first.piece)
      if (!whole && !swarm.readable(first.piece, first.begin, first.length)) {
        this.awaitBlocks(first.piece)
        at = this.readyBehind()
        if (at < 0) return
        first = this.requests[at]!
        whole = swarm.picker.has(first.piece)
      } else this.awaiting = -1
      let end = first.begin + first.length
      let count = 1
      const most = Math.min(MAX_BATCH_BYTES, quota, Math.max(first.length, Math.min(cap - held, room)))
      while (at + count < this.requests.length) {
        const next = this.requests[at + count]!
        if (next.piece !== first.piece || next.begin !== end || end - first.begin + next.length > most) break
        if (!whole && !swarm.readable(next.piece, next.begin, next.length)) break
        end += next.length
        count++
      }
      const bytes = end - first.begin
      const delay = swarm.uploadDelay(bytes)
      if (delay > 0) {
        swarm.wakeUpload(delay, () => this.pump())
        return
      }
      const batch = this.requests.splice(at, count)
      this.sentSinceHeard += bytes
      const blocks = Math.ceil(bytes / BLOCK) + (first.begin % BLOCK === 0 ? 0 : 1)
      this.readsInFlight++
      this.readBlocks += blocks
      this.readBytes += bytes
      budget.held += blocks * BLOCK
      swarm.read(first.piece, first.begin, bytes, (result) => {
        this.readsInFlight--
        this.readBlocks -= blocks
        this.readBytes -= bytes
        swarm.uploads.held -= blocks * BLOCK
        if (result._tag === "Failure") {
          // The data could not be read (a failing disk): reject what we cannot serve.
          for (const r of batch) this.rejectOrDrop(r.piece, r.begin, r.length)
          swarm.reportError(result.message)
        } else if (peer.closed) {
          result.read.release()
        } else {
          this.sendPieces(batch, result.read)
        }
        this.pump()
      })
    }
  }

  /** The first queued request that can be served now (within `READY_SCAN`), -1 if none. */
  private readyBehind(): number {
    const swarm = this.peer.swarm
    const n = Math.min(this.requests.length, READY_SCAN)
    for (let i = 1; i < n; i++) {
      const r = this.requests[i]!
      if (swarm.readable(r.piece, r.begin, r.length)) return i
    }
    return -1
  }

  /** Waits for more blocks of `piece`, promised and not all in (the first request's). */
  private awaitBlocks(piece: number): void {
    const swarm = this.peer.swarm
    if (this.awaiting !== piece) {
      this.awaiting = piece
      this.awaitingSince = swarm.now()
    }
    // One wake-up per piece waited for (one left for a piece no longer first only pumps once more).
    if (this.awaitRegistered === piece) return
    this.awaitRegistered = piece
    swarm.whenReadable(piece, () => {
      if (this.awaitRegistered === piece) this.awaitRegistered = -1
      this.pump()
    })
  }

  /** Once a second: a peer held at the quiet limit may have `TRICKLE_BYTES` more. */
  trickle(): void {
    if (!this.hushed) return
    this.hushed = false
    this.sentSinceHeard = Math.min(this.sentSinceHeard, this.quiet - TRICKLE_BYTES)
    this.pump()
  }

  private sendPieces(
    batch: ReadonlyArray<QueuedRequest>,
    read: { blocks: ReadonlyArray<BufferPool.Block>; views: ReadonlyArray<Uint8Array> }
  ): void {
    const { blocks, views } = read
    const peer = this.peer
    let view = 0
    let within = 0
    for (const r of batch) {
      const parts: Array<Uint8Array> = [Wire.pieceHeader(r.piece, r.begin, r.length)]
      const ends: Array<BufferPool.Block | undefined> = [undefined]
      const sizes: Array<number> = [0]
      let left = r.length
      while (left > 0) {
        const v = views[view]!
        const n = Math.min(left, v.length - within)
        parts.push(within === 0 && n === v.length ? v : v.subarray(within, within + n))
        within += n
        left -= n
        if (within === v.length) {
          // The last bytes of this block: release it once the socket has taken them.
          const block = blocks[view]!
          this.sending.add(block)
          peer.swarm.uploads.held += BLOCK
          ends.push(block)
          sizes.push(v.length)
          view++
          within = 0
        } else {
          ends.push(undefined)
          sizes.push(0)
        }
      }
      this.outbox.push({ parts, ends, sizes, bytes: r.length + 13 })
      this.outboxBytes += r.length + 13
      peer.uploaded += r.length
      peer.swarm.uploaded(peer, r.length, r.piece)
    }
    this.flushOutbox()
    peer.lastSent = peer.lastPayload = peer.swarm.now()
  }

  /** Hands whole piece messages from the outbox to the socket while it holds less than `socketQueue`. */
  private flushOutbox(): void {
    const socket = this.peer.socket
    if (this.outHead === this.outbox.length || this.peer.closed) return
    const most = this.socketQueue
    if (socket.writableLength >= most) return
    socket.cork()
    while (this.outHead < this.outbox.length && socket.writableLength < most) {
      const message = this.outbox[this.outHead++]!
      this.outboxBytes -= message.bytes
      const { parts, ends, sizes } = message
      for (let i = 0; i < parts.length; i++) {
        const block = ends[i]
        if (block === undefined) socket.write(parts[i]!)
        else {
          const size = sizes[i]!
          socket.write(parts[i]!, () => this.releaseSent(block, size))
        }
      }
    }
    if (this.outHead === this.outbox.length) {
      this.outbox = []
      this.outHead = 0
    }
    socket.uncork()
  }

  /** The socket took the last bytes of `block` (`size` bytes of it were sent). */
  private releaseSent(block: BufferPool.Block, size: number): void {
    this.flushed++
    this.took += size
    // Refill once the socket is down to half its share, so that it takes several messages per
    // system call rather than one per block sent.
    if (this.peer.socket.writableLength <= this.socketQueue >> 1) this.flushOutbox()
    if (this.sending.delete(block)) {
      this.peer.swarm.uploads.held -= BLOCK
      if (!block.released) block.release()
    }
    if (this.capped || (this.full && this.limit - this.backlog >= this.minRoom)) {
      this.capped = false
      this.full = false
      this.pump()
    }
  }

  /**
   * Closes the connection if its socket has held unsent bytes for `stallMs` with its queue
   * neither shrinking nor flushing a block (a peer that stopped reading); called periodically.
   */
  checkSendProgress(now: number, stallMs: number): void {
    // A promised piece whose blocks stopped coming (its source left and nobody else has it yet):
    // its requests are refused, to be asked of someone else.
    if (this.awaiting >= 0 && now - this.awaitingSince >= PROMISE_WAIT_MS) {
      const piece = this.awaiting
      this.awaiting = -1
      for (const r of this.requests) if (r.piece === piece) this.rejectOrDrop(r.piece, r.begin, r.length)
      const kept = this.requests.filter((r) => r.piece !== piece)
      this.requests.length = 0
      this.requests.push(...kept)
      this.pump()
    }
    const queued = this.peer.socket.writableLength + this.outboxBytes
    if (queued === 0 || queued < this.queuedSeen || this.flushed !== this.flushedSeen)
      this.sendProgressAt = now
    this.queuedSeen = queued
    this.flushedSeen = this.flushed
    if (now - this.sendProgressAt >= stallMs)
      this.peer.close(
        `sent nothing for ${Math.round(stallMs / 1000)} s: ${queued} bytes queued, the peer does not read`
      )
  }

  /** The connection closed: every block goes back, even those whose write callbacks never ran. */
  close(): void {
    for (const block of this.sending) if (!block.released) block.release()
    this.peer.swarm.uploads.held -= this.sending.size * BLOCK
    this.sending.clear()
    this.requests.length = 0
    this.outbox = []
    this.outHead = 0
    this.outboxBytes = 0
  }
}
