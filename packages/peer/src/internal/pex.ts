// Peer exchange (BEP 11, `ut_pex` over the BEP 10 extension protocol), so targets learn of each
// other between announces. A message is a bencoded dictionary of compact peers: `added` (6 bytes
// each) with one flag byte each in `added.f`, `dropped`, and `added6`/`added6.f`/`dropped6`
// (18 bytes each). What we send a peer is the difference between the peers we are connected to
// now and what we told it last time: at most one message a minute (BEP 11), the first one soon
// after its extension handshake.
import * as Either from "effect/Either"
import { Bencode } from "@ezio/torrent"
import { WireError } from "./wire/error.js"
import { MessageId } from "./wire/message.js"
import { addressKey } from "./dialer.js"
import { decodeCompactPeers, encodeCompactPeers, parseIpv4, parseIpv6 } from "./httpTracker.js"
import type { PeerAddress } from "./trackerModel.js"

/** The id we receive `ut_pex` under (libtorrent's choice too). */
export const UT_PEX_ID = 1

/** BEP 11 flags of an added peer. */
export const Flags = {
  encryption: 0x01,
  /** A seed (or upload only). */
  seed: 0x02,
  utp: 0x04,
  holepunch: 0x08,
  /** We connected to it: it accepts connections. */
  reachable: 0x10
} as const

export interface PexPeer extends PeerAddress {
  readonly flags: number
}

export interface PexMessage {
  readonly added: ReadonlyArray<PexPeer>
  readonly dropped: ReadonlyArray<PeerAddress>
}

/** Most peers we put in `added` and in `dropped` of one message (BEP 11's 50). */
export const MAX_PER_MESSAGE = 50
/** Most added peers we take from one received message (libtorrent's bound). */
export const MAX_RECEIVED = 100
/** BEP 11: no more than one message a minute to a peer. */
export const INTERVAL_MS = 60_000
/** The first message waits this long after the handshake, so the peer's own list has settled. */
export const FIRST_DELAY_MS = 2_000

const familyOf = (ip: string): 4 | 6 | undefined =>
  parseIpv4(ip) !== undefined ? 4 : parseIpv6(ip) !== undefined ? 6 : undefined

/** The payload of a `ut_pex` message (without the extended-message header). */
export const encode = (message: PexMessage): Uint8Array => {
  const v4 = message.added.filter((p) => familyOf(p.ip) === 4)
  const v6 = message.added.filter((p) => familyOf(p.ip) === 6)
  const dict: Record<string, Bencode.Value> = {
    added: encodeCompactPeers(v4, 4),
    "added.f": Uint8Array.from(v4, (p) => p.flags & 0xff),
    dropped: encodeCompactPeers(message.dropped, 4)
  }
  if (v6.length > 0) {
    dict["added6"] = encodeCompactPeers(v6, 6)
    dict["added6.f"] = Uint8Array.from(v6, (p) => p.flags & 0xff)
  }
  const dropped6 = encodeCompactPeers(message.dropped, 6)
  if (dropped6.length > 0) dict["dropped6"] = dropped6
  return Bencode.encode(dict)
}

const malformed = (payload: Uint8Array, offset: number, detail: string) =>
  new WireError({
    reason: "Malformed",
    messageId: MessageId.Extended,
    offset,
    length: payload.length,
    detail: `ut_pex: ${detail}`
  })

const withFlags = (peers: Array<PeerAddress>, flags: unknown): Array<PexPeer> =>
  peers.map((p, i) => ({
    ip: p.ip,
    port: p.port,
    flags: flags instanceof Uint8Array && i < flags.length ? flags[i]! : 0
  }))

/** Decodes a `ut_pex` payload; lenient about missing or mistyped keys (they count as empty). */
export const decode = (payload: Uint8Array): Either.Either<PexMessage, WireError> => {
  const decoded = Bencode.decode(payload, { allowUnsortedKeys: true })
  if (Either.isLeft(decoded)) return Either.left(malformed(payload, decoded.left.offset, decoded.left.reason))
  const dict = decoded.right
  if (!Bencode.isDict(dict)) return Either.left(malformed(payload, 0, "not a dictionary"))
  const bytes = (key: string): Uint8Array => {
    const v = dict[Bencode.key(key)]
    return v instanceof Uint8Array ? v : new Uint8Array(0)
  }
  return Either.right({
    added: [
      ...withFlags(decodeCompactPeers(bytes("added"), 4), dict[Bencode.key("added.f")]),
      ...withFlags(decodeCompactPeers(bytes("added6"), 6), dict[Bencode.key("added6.f")])
    ],
    dropped: [...decodeCompactPeers(bytes("dropped"), 4), ...decodeCompactPeers(bytes("dropped6"), 6)]
  })
}

/** What we told one peer, and when we may tell it more. */
export class PexSender {
  /** Address key → the peer as last sent. */
  private readonly told = new Map<string, PexPeer>()
  next: number

  constructor(
    /** The id the peer receives `ut_pex` under (from its extension handshake). */
    readonly remoteId: number,
    now: number
  ) {
    this.next = now + FIRST_DELAY_MS
  }

  /**
   * The message to send now, given the peers we are connected to (keyed by address; the
   * recipient's own left out), or undefined if it is not time yet or nothing changed.
   */
  poll(now: number, current: ReadonlyMap<string, PexPeer>, recipient?: string): Uint8Array | undefined {
    if (now < this.next) return undefined
    const added: Array<PexPeer> = []
    const dropped: Array<PeerAddress> = []
    for (const [key, peer] of current) {
      if (added.length >= MAX_PER_MESSAGE) break
      if (key === recipient) continue
      const was = this.told.get(key)
      if (was === undefined || was.flags !== peer.flags) added.push(peer)
    }
    for (const [key, peer] of this.told) {
      if (dropped.length >= MAX_PER_MESSAGE) break
      if (!current.has(key) || key === recipient) dropped.push(peer)
    }
    if (added.length === 0 && dropped.length === 0) return undefined
    this.next = now + INTERVAL_MS
    for (const peer of dropped) this.told.delete(keyOf(peer))
    for (const peer of added) this.told.set(keyOf(peer), peer)
    return encode({ added, dropped })
  }
}

const keyOf = (p: PeerAddress): string => addressKey(p.ip, p.port)
