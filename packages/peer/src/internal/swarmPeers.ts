// Where a swarm's peers come from and go to: dialing (the dialer's `dial`), making room at the
// connection limit, the listen addresses peers tell us (BEP 10 `p`) and PEX (BEP 11) both ways.
// Plain functions over the swarm's state; `SwarmCore` owns it and calls these.
import * as Net from "node:net"
import * as Wire from "../Wire.js"
import * as Admission from "./admission.js"
import type { Connection } from "./connection.js"
import type * as Dialer from "./dialer.js"
import * as Pex from "./pex.js"
import type { SmartBan } from "./smartBan.js"

/** Where a connection's peer listens (the address we dialled, or its BEP 10 `p`): its dialer key. */
export interface ListenAddress {
  readonly ip: string
  readonly port: number
  readonly key: string
}

/** The part of the swarm these functions use. */
export interface PeersCore {
  readonly closed: boolean
  readonly peerId: Uint8Array
  /** The connection of each peer id (hex) that passed `admit`. */
  readonly peerIds: Map<string, Connection>
  /** Peer ids (hex) of banned peers. */
  readonly bannedIds: ReadonlySet<string>
  readonly options: { readonly maxPeers: number; readonly pex: boolean }
  readonly connections: ReadonlySet<Connection>
  readonly now: () => number
  readonly dialer: Dialer.Dialer
  readonly smartBan: SmartBan
  /** Where outgoing connections' socket reads land. */
  readonly readBuffer: Buffer
  readonly listenAddress: Map<Connection, ListenAddress>
  /** The ones we told `ut_pex` about, per peer that speaks it. */
  readonly pexSenders: Map<Connection, Pex.PexSender>
  /** Addresses of seeds, not dialled while we are one too. */
  readonly seeds: Set<string>
  readonly add: (socket: Net.Socket, outgoing: boolean) => Connection | undefined
  readonly log: (message: string) => void
}

/** "::ffff:10.0.0.1" (an IPv4 peer on a dual-stack socket) as "10.0.0.1". */
export const unmapped = (ip: string): string =>
  ip.startsWith("::ffff:") && ip.includes(".") ? ip.slice(7) : ip

/** False if `c`'s peer is banned, or already connected and that connection is the one kept. */
export const admit = (core: PeersCore, c: Connection, peerId: Uint8Array): boolean => {
  const id = Buffer.from(peerId).toString("hex")
  if (core.bannedIds.has(id) || core.smartBan.isBanned(c.address)) return false
  const existing = core.peerIds.get(id)
  const address = core.listenAddress.get(c)?.key
  if (existing !== undefined && existing !== c && !existing.closed) {
    if (address !== undefined) core.dialer.identify(address, id)
    if (!keepsNewer(core, c, existing, peerId)) return false
    existing.close("replaced by the connection the peer and we dialled at the same time")
  }
  core.peerIds.set(id, c)
  core.dialer.peerConnected(id)
  if (address !== undefined) core.dialer.handshaken(address, id)
  return true
}

/**
 * Two connections to one peer, one each way (both ends dialled at once): keep the one the
 * lower peer id opened, which the other end chooses too, so one survives rather than none.
 */
const keepsNewer = (core: PeersCore, c: Connection, existing: Connection, peerId: Uint8Array): boolean => {
  if (c.outgoing === existing.outgoing) return false
  const opener = (x: Connection) => (x.outgoing ? core.peerId : peerId)
  return Buffer.compare(opener(c), opener(existing)) < 0
}

/** At the connection limit: evicts the peer idle longest (admission.ts); false if none is idle. */
export const makeRoom = (core: PeersCore): boolean => {
  const idle = Admission.victim(core.connections, core.now())
  if (idle === undefined) return false
  idle.close("idle at the connection limit: making room for a new peer")
  return true
}

/** Opens one connection for the dialer, and tells it how that went. */
export const dial = (core: PeersCore, host: string, port: number, address: string): void => {
  if (
    core.closed ||
    core.smartBan.isBanned(address) ||
    (core.connections.size >= core.options.maxPeers &&
      Admission.victim(core.connections, core.now()) === undefined)
  )
    return core.dialer.failed(address)
  // Reads land in one buffer the swarm reuses (the parser copies out everything it keeps,
  // synchronously), instead of a fresh 64 KiB Buffer per read for the GC to collect.
  // Nothing arrives before "connect", which sets the receiver.
  let receiver: Connection | undefined
  const socket = Net.connect({
    host,
    port,
    onread: {
      buffer: core.readBuffer,
      callback: (n, buffer) => {
        receiver?.receive(buffer.subarray(0, n))
        return true
      }
    }
  })
  socket.setTimeout(10_000, () => socket.destroy(new Error("connect timed out")))
  let settled = false
  const failed = () => {
    if (settled) return
    settled = true
    core.dialer.failed(address)
  }
  socket.once("error", failed)
  socket.once("close", failed)
  socket.once("connect", () => {
    socket.setTimeout(0)
    settled = true
    core.dialer.opened(address)
    receiver = core.add(socket, true)
    if (receiver === undefined) return core.dialer.failed(address)
    core.listenAddress.set(receiver, { ip: unmapped(socket.remoteAddress ?? host), port, key: address })
    receiver.startOutgoing()
  })
}

/** How the dialer hears that a connection is gone; its PEX state goes with it. */
export const forgetPeer = (core: PeersCore, c: Connection): void => {
  core.pexSenders.delete(c)
  const listen = core.listenAddress.get(c)
  core.listenAddress.delete(c)
  if (c.isSeed && c.handshaken && listen !== undefined) core.seeds.add(listen.key)
  if (listen !== undefined && c.outgoing) {
    if (c.closeReason === "connected to ourselves") core.dialer.self(listen.key)
    else if (c.handshaken) core.dialer.lost(listen.key)
    else core.dialer.failed(listen.key)
  }
  core.dialer.poke()
}

/** The peer's extension handshake: its listen port (a dialer address) and its `ut_pex` id. */
export const extensionHandshake = (
  core: PeersCore,
  c: Connection,
  handshake: Wire.ExtensionHandshake
): void => {
  if (!c.outgoing && handshake.p !== undefined && handshake.p > 0 && handshake.p <= 65535) {
    const ip = unmapped(c.socket.remoteAddress ?? "")
    const key = core.dialer.add(ip, handshake.p, "incoming")
    if (key !== undefined) {
      core.listenAddress.set(c, { ip, port: handshake.p, key })
      if (c.remotePeerId !== undefined) core.dialer.identify(key, Buffer.from(c.remotePeerId).toString("hex"))
    }
  }
  const pexId = handshake.m["ut_pex"]
  if (core.options.pex && pexId !== undefined && pexId > 0 && pexId < 256)
    core.pexSenders.set(c, new Pex.PexSender(pexId, core.now()))
  else core.pexSenders.delete(c)
}

/** A `ut_pex` message: the peers it adds go to the dialer. */
export const pexReceived = (core: PeersCore, c: Connection, payload: Uint8Array): void => {
  const decoded = Pex.decode(payload)
  if (decoded._tag === "Left") return core.log(`peer ${c.address}: ${decoded.left.message}`)
  const added = decoded.right.added
  for (let i = 0; i < added.length && i < Pex.MAX_RECEIVED; i++) {
    const peer = added[i]!
    const key = core.dialer.add(peer.ip, peer.port, "pex")
    if (key !== undefined && (peer.flags & Pex.Flags.seed) !== 0) core.seeds.add(key)
  }
}

/** Sends each peer that speaks `ut_pex` what changed since we last told it (at most once a minute). */
export const pexTick = (core: PeersCore): void => {
  if (core.closed || core.pexSenders.size === 0) return
  const now = core.now()
  let due = false
  for (const sender of core.pexSenders.values()) if (sender.next <= now) due = true
  if (!due) return
  const current = new Map<string, Pex.PexPeer>()
  for (const [c, listen] of core.listenAddress) {
    if (!c.handshaken || c.closed) continue
    const flags = (c.outgoing ? Pex.Flags.reachable : 0) | (c.isSeed ? Pex.Flags.seed : 0)
    current.set(listen.key, { ip: listen.ip, port: listen.port, flags })
  }
  for (const [c, sender] of core.pexSenders) {
    if (!c.handshaken || c.closed) continue
    const payload = sender.poll(now, current, core.listenAddress.get(c)?.key)
    if (payload !== undefined) c.send(Wire.encodeExtended(sender.remoteId, payload))
  }
}
