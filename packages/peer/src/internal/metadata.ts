// BEP 9 (ut_metadata): serving a torrent's info dictionary to peers that started from a magnet
// link, and fetching it for a swarm added from one.
//
// Serving is one function a connection calls for each ut_metadata message (`answer`).
//
// Fetching happens before the swarm exists (its piece count, storage and picker all come from the
// metadata), so `MetadataFetcher` holds its own connections: it sends our handshake and extension
// handshake, frames what the peer sends, answers ut_metadata itself and keeps every other frame
// (the peer's bitfield, haves, its extension handshake) in order. Once the metadata is verified
// (SHA-1 against the magnet's info-hash) the swarm adopts the sockets with those frames
// (`detach`), so the peers are kept rather than redialled (libtorrent refuses a second connection
// from one address by default, and a redial races the peer noticing the first one closed).
import * as NCrypto from "node:crypto"
import * as Net from "node:net"
import * as Either from "effect/Either"
import * as Wire from "../Wire.js"

/** The id we receive ut_metadata messages under (libtorrent's choice too). */
export const LOCAL_METADATA_ID = 2

/** Largest frame accepted before the metadata is known: a bitfield of 2^25 pieces, with room. */
const MAX_FRAME = 4 * 1024 * 1024 + 16
/** Frames kept for the swarm, per peer, before we hang up on it. */
const MAX_REPLAY = 8 * 1024 * 1024
/** Metadata requests outstanding per peer. */
const PER_PEER = 8
/** A request unanswered this long goes to another peer. */
const REQUEST_TIMEOUT_MS = 10_000

/**
 * The reply to a ut_metadata message from a peer, or `undefined` for none: data for a valid
 * request, a reject for a piece past the end or while `busy` (the socket is backed up), nothing
 * for data, rejects and undecodable messages (BEP 9 says to ignore what one does not understand).
 */
export const answer = (
  infoBytes: Uint8Array | undefined,
  remoteId: number,
  payload: Uint8Array,
  busy: boolean
): Uint8Array | undefined => {
  if (remoteId === 0) return undefined
  const decoded = Wire.decodeMetadataMessage(payload)
  if (Either.isLeft(decoded) || decoded.right._tag !== "MetadataRequest") return undefined
  const piece = decoded.right.piece
  if (infoBytes === undefined || busy || piece >= Wire.metadataPieces(infoBytes.length))
    return Wire.encodeMetadataMessage(remoteId, { _tag: "MetadataReject", piece })
  const begin = piece * Wire.METADATA_PIECE
  return Wire.encodeMetadataMessage(remoteId, {
    _tag: "MetadataData",
    piece,
    totalSize: infoBytes.length,
    data: infoBytes.subarray(begin, Math.min(begin + Wire.METADATA_PIECE, infoBytes.length))
  })
}

/** A fetch connection handed to the swarm: its socket, the peer's handshake, its frames so far. */
export interface Handoff {
  readonly socket: Net.Socket
  readonly outgoing: boolean
  readonly handshake: Wire.Handshake
  /** Every frame the peer sent but ut_metadata ones, in order, then any partial frame. */
  readonly replay: Uint8Array
}

export interface FetcherParams {
  readonly infoHash: Uint8Array
  readonly peerId: Uint8Array
  readonly listenPort: number
  /** Largest info dictionary accepted, in bytes. */
  readonly maxSize: number
  readonly now: () => number
  /** Called once, with info bytes whose SHA-1 is the info-hash. */
  readonly onMetadata: (infoBytes: Uint8Array) => void
  readonly log: (message: string) => void
}

class FetchPeer {
  handshake: Wire.Handshake | undefined
  /** The peer's id for ut_metadata (0: it does not speak it) and the size it advertised. */
  remoteId = 0
  size: number | undefined
  /** It rejected a request: it has no metadata to give. */
  refused = false
  closed = false
  lastReceived: number
  lastSent: number
  readonly requested = new Set<number>()
  private pending: Buffer = Buffer.alloc(0)
  private replay: Array<Uint8Array> = []
  private replayBytes = 0
  private readonly onData = (chunk: Buffer) => this.receive(chunk)
  private readonly onClose = () => this.close("the peer closed the connection")
  private readonly onError = (error: Error) => this.close(`socket error: ${error.message}`)

  constructor(
    readonly fetcher: MetadataFetcher,
    readonly socket: Net.Socket,
    readonly outgoing: boolean,
    readonly address: string
  ) {
    this.lastReceived = this.lastSent = fetcher.params.now()
    socket.setNoDelay(true)
    socket.on("data", this.onData)
    socket.on("close", this.onClose)
    socket.on("error", this.onError)
  }

  send(bytes: Uint8Array): void {
    if (this.closed) return
    this.lastSent = this.fetcher.params.now()
    this.socket.write(bytes)
  }

  /** Our handshake went out; theirs is known: send the extension handshake. */
  start(handshake: Wire.Handshake): void {
    const f = this.fetcher
    if (Buffer.compare(handshake.infoHash, f.params.infoHash) !== 0)
      return this.close("wrong info-hash in the handshake")
    if (Buffer.compare(handshake.peerId, f.params.peerId) === 0) return this.close("connected to ourselves")
    if (!handshake.extensions) return this.close("the peer does not speak the extension protocol (BEP 10)")
    this.handshake = handshake
    this.send(
      Wire.encodeExtensionHandshake({
        m: { [Wire.UT_METADATA]: LOCAL_METADATA_ID },
        v: "ezio 0.1.0",
        ...(f.params.listenPort > 0 ? { p: f.params.listenPort } : {}),
        ...(f.infoBytes !== undefined ? { metadataSize: f.infoBytes.length } : {})
      })
    )
  }

  receive(chunk: Uint8Array): void {
    if (this.closed) return
    this.lastReceived = this.fetcher.params.now()
    let buffer = this.pending.length === 0 ? Buffer.from(chunk) : Buffer.concat([this.pending, chunk])
    if (this.handshake === undefined) {
      if (buffer.length > 0 && buffer[0] !== Wire.PROTOCOL.length) return this.close("not a BitTorrent peer")
      if (buffer.length < Wire.HANDSHAKE_LENGTH) {
        this.pending = buffer
        return
      }
      const decoded = Wire.decodeHandshake(buffer.subarray(0, Wire.HANDSHAKE_LENGTH))
      if (Either.isLeft(decoded)) return this.close(decoded.left.message)
      this.start(decoded.right)
      if (this.closed) return
      buffer = buffer.subarray(Wire.HANDSHAKE_LENGTH)
    }
    let at = 0
    while (!this.closed && buffer.length - at >= 4) {
      const length = buffer.readUInt32BE(at)
      if (length > MAX_FRAME) return this.close(`a ${length}-byte message before the metadata is known`)
      if (buffer.length - at < 4 + length) break
      if (length > 0) this.frame(buffer.subarray(at, at + 4 + length))
      at += 4 + length
    }
    this.pending = buffer.subarray(at)
  }

  private frame(frame: Buffer): void {
    const id = frame[4]!
    if (id === Wire.MessageId.Extended && frame.length >= 6) {
      const extendedId = frame[5]!
      const payload = frame.subarray(6)
      if (extendedId === LOCAL_METADATA_ID) return this.fetcher.onMetadataMessage(this, payload)
      if (extendedId === 0) {
        const decoded = Wire.decodeExtensionHandshake(payload)
        if (Either.isRight(decoded)) {
          this.remoteId = decoded.right.m[Wire.UT_METADATA] ?? 0
          const size = decoded.right.metadataSize
          this.size = size !== undefined && size > 0 ? size : undefined
        }
      }
    }
    // We request no blocks before the swarm exists: a piece message is unsolicited.
    if (id === Wire.MessageId.Piece) return
    this.replayBytes += frame.length
    if (this.replayBytes > MAX_REPLAY) return this.close("too many messages while we fetch the metadata")
    this.replay.push(frame)
    if (id === Wire.MessageId.Extended && frame[5] === 0) this.fetcher.fill()
  }

  /** Stops listening and gives the socket away, paused, with the frames it kept. */
  detach(): Handoff | undefined {
    if (this.closed || this.handshake === undefined) return undefined
    this.closed = true
    this.socket.off("data", this.onData)
    this.socket.off("close", this.onClose)
    this.socket.off("error", this.onError)
    this.socket.pause()
    this.socket.setTimeout(0)
    return {
      socket: this.socket,
      outgoing: this.outgoing,
      handshake: this.handshake,
      replay: Buffer.concat([...this.replay, this.pending])
    }
  }

  close(reason: string): void {
    if (this.closed) return
    this.closed = true
    this.socket.destroy()
    this.fetcher.removed(this, reason)
  }
}

/**
 * One info-hash's metadata fetch: its connections, the pieces received, who was asked what.
 * Plain callbacks; `tick` (once a second) re-asks what timed out and keeps idle peers alive.
 */
export class MetadataFetcher {
  readonly peers = new Set<FetchPeer>()
  private readonly dialing = new Set<string>()
  /** The size being fetched, from the first peer that advertised one. */
  private size: number | undefined
  private pieces: Array<Uint8Array | undefined> = []
  private readonly asked = new Map<number, { readonly peer: FetchPeer; readonly at: number }>()
  /** Peers whose data failed the hash check: never used again. */
  private readonly banned = new Set<string>()
  /** Peers asked for a piece of the current attempt (blamed together if it fails the hash check). */
  private readonly contributors: Array<FetchPeer> = []
  private readonly handshakeBytes: Uint8Array
  infoBytes: Uint8Array | undefined
  closed = false

  constructor(readonly params: FetcherParams) {
    this.handshakeBytes = Wire.encodeHandshake({
      infoHash: params.infoHash,
      peerId: params.peerId,
      fast: true,
      extensions: true
    })
  }

  /** Dials a peer unless already connected or dialing. */
  connect(host: string, port: number): void {
    const address = `${host}:${port}`
    if (this.closed || this.dialing.has(address) || this.banned.has(address)) return
    for (const p of this.peers) if (p.address === address) return
    this.dialing.add(address)
    const socket = Net.connect({ host, port })
    socket.setTimeout(10_000, () => socket.destroy(new Error("connect timed out")))
    const forget = () => this.dialing.delete(address)
    socket.once("error", forget)
    socket.once("close", forget)
    socket.once("connect", () => {
      socket.setTimeout(0)
      forget()
      if (this.closed) return socket.destroy()
      const peer = new FetchPeer(this, socket, true, address)
      this.peers.add(peer)
      peer.send(this.handshakeBytes)
    })
  }

  /** A peer that dialled us: its handshake is read, `rest` is what followed it. */
  incoming(socket: Net.Socket, handshake: Wire.Handshake, rest: Uint8Array): void {
    if (this.closed) return void socket.destroy()
    const peer = new FetchPeer(this, socket, false, `${socket.remoteAddress}:${socket.remotePort}`)
    this.peers.add(peer)
    peer.send(this.handshakeBytes)
    peer.start(handshake)
    if (rest.length > 0) peer.receive(rest)
  }

  onMetadataMessage(peer: FetchPeer, payload: Uint8Array): void {
    const decoded = Wire.decodeMetadataMessage(payload)
    if (Either.isLeft(decoded)) return
    const message = decoded.right
    switch (message._tag) {
      case "MetadataRequest": {
        const reply = answer(this.infoBytes, peer.remoteId, payload, false)
        if (reply !== undefined) peer.send(reply)
        return
      }
      case "MetadataReject": {
        if (this.asked.get(message.piece)?.peer === peer) this.asked.delete(message.piece)
        peer.requested.delete(message.piece)
        peer.refused = true
        return this.fill()
      }
      case "MetadataData": {
        const asked = this.asked.get(message.piece)
        if (asked?.peer !== peer || this.size === undefined || this.infoBytes !== undefined) return
        this.asked.delete(message.piece)
        peer.requested.delete(message.piece)
        const begin = message.piece * Wire.METADATA_PIECE
        const expected = Math.min(Wire.METADATA_PIECE, this.size - begin)
        if (message.totalSize !== this.size || message.data.length !== expected)
          return peer.close(`metadata piece ${message.piece} of the wrong size`)
        this.pieces[message.piece] = new Uint8Array(message.data)
        if (this.pieces.every((p) => p !== undefined)) return this.verify()
        return this.fill()
      }
    }
  }

  private verify(): void {
    const infoBytes = Buffer.concat(this.pieces as Array<Uint8Array>)
    const sha1 = NCrypto.createHash("sha1").update(infoBytes).digest()
    if (Buffer.compare(sha1, this.params.infoHash) === 0) {
      this.infoBytes = new Uint8Array(infoBytes)
      this.params.onMetadata(this.infoBytes)
      return
    }
    // Some peer sent bad pieces; not knowing which, drop every peer that sent one.
    this.params.log(
      `the metadata (${infoBytes.length} bytes) does not match the info-hash; fetching it again`
    )
    const senders = new Set(this.contributors)
    this.contributors.length = 0
    for (const peer of senders) {
      this.banned.add(peer.address)
      peer.close("sent metadata that does not match the info-hash")
    }
    this.size = undefined
    this.pieces = []
    this.fill()
  }

  /** Asks peers for the pieces nobody is fetching. */
  fill(): void {
    if (this.closed || this.infoBytes !== undefined) return
    // Every peer that advertised the size being fetched is gone: start over with another's.
    if (this.size !== undefined && !this.anyPeerWith(this.size)) {
      this.size = undefined
      this.pieces = []
      this.contributors.length = 0
    }
    if (this.size === undefined) {
      for (const peer of this.peers) {
        const size = peer.size
        if (peer.closed || peer.remoteId === 0 || size === undefined) continue
        if (size > this.params.maxSize) {
          peer.close(`its metadata is ${size} bytes, more than the limit of ${this.params.maxSize}`)
          continue
        }
        this.size = size
        this.pieces = new Array<Uint8Array | undefined>(Wire.metadataPieces(size)).fill(undefined)
        break
      }
      if (this.size === undefined) return
    }
    const now = this.params.now()
    for (const peer of this.peers) {
      if (peer.closed || peer.refused || peer.remoteId === 0 || peer.size !== this.size) continue
      for (let i = 0; i < this.pieces.length && peer.requested.size < PER_PEER; i++) {
        if (this.pieces[i] !== undefined || this.asked.has(i)) continue
        this.asked.set(i, { peer, at: now })
        peer.requested.add(i)
        if (!this.contributors.includes(peer)) this.contributors.push(peer)
        peer.send(Wire.encodeMetadataMessage(peer.remoteId, { _tag: "MetadataRequest", piece: i }))
      }
    }
  }

  private anyPeerWith(size: number): boolean {
    for (const peer of this.peers) if (!peer.closed && peer.remoteId !== 0 && peer.size === size) return true
    return false
  }

  removed(peer: FetchPeer, reason: string): void {
    this.peers.delete(peer)
    for (const piece of peer.requested) if (this.asked.get(piece)?.peer === peer) this.asked.delete(piece)
    peer.requested.clear()
    if (peer.handshake !== undefined) this.params.log(`metadata peer ${peer.address} left: ${reason}`)
    this.fill()
  }

  /** Once a second: re-ask timed-out requests elsewhere, keep idle connections alive. */
  tick(): void {
    const now = this.params.now()
    for (const [piece, { at, peer }] of this.asked)
      if (now - at > REQUEST_TIMEOUT_MS) {
        this.asked.delete(piece)
        peer.requested.delete(piece)
        peer.refused = true
      }
    for (const peer of this.peers) {
      if (now - peer.lastReceived > 150_000) peer.close("no message for 150 s")
      else if (peer.handshake === undefined && now - peer.lastReceived > 20_000)
        peer.close("no handshake within 20 s")
    }
    for (const peer of this.peers) if (now - peer.lastSent > 60_000) peer.send(Wire.encodeKeepAlive())
    // Peers that refused get another chance once nobody else is left to ask.
    if (this.infoBytes === undefined && this.asked.size === 0)
      for (const peer of this.peers) if (!this.banned.has(peer.address)) peer.refused = false
    this.fill()
  }

  /** Gives every handshaken connection to the swarm; the fetcher is done. */
  detach(): Array<Handoff> {
    this.closed = true
    const out: Array<Handoff> = []
    for (const peer of this.peers) {
      const handoff = peer.detach()
      if (handoff !== undefined) out.push(handoff)
      else peer.close("the swarm started")
    }
    this.peers.clear()
    return out
  }

  close(): void {
    if (this.closed) return
    this.closed = true
    for (const peer of [...this.peers]) peer.close("shutting down")
  }
}
