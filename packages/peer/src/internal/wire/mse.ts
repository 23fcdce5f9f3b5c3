/**
 * MSE/PE, Message Stream Encryption (the Vuze/Azureus "protocol encryption" most clients speak):
 * the handshake as two plain state machines, fed the bytes a socket delivers. No sockets here:
 * `send` hands bytes to the caller, and `feed` says when the handshake is done.
 *
 *   1 A->B  Ya, PadA
 *   2 B->A  Yb, PadB
 *   3 A->B  HASH('req1', S), HASH('req2', SKEY) xor HASH('req3', S),
 *           ENCRYPT(VC, crypto_provide, len(PadC), PadC, len(IA)), ENCRYPT(IA)
 *   4 B->A  ENCRYPT(VC, crypto_select, len(PadD), PadD), then the stream as selected
 *
 * Ya/Yb are Diffie-Hellman public keys (768-bit prime, generator 2), S the shared secret, SKEY the
 * info-hash, VC 8 zero bytes, ENCRYPT RC4 keyed with HASH('keyA'|'keyB', S, SKEY) without its
 * first 1024 bytes. After step 4 the stream is plaintext (crypto_select 0x01) or RC4 throughout
 * (0x02). IA, the initial payload, carries the initiator's BitTorrent handshake.
 */
import * as NCrypto from "node:crypto"
import * as Data from "effect/Data"
import { Rc4 } from "./rc4.js"

/** crypto_provide / crypto_select bits. */
export const CRYPTO_PLAINTEXT = 0x01
export const CRYPTO_RC4 = 0x02

/** The spec's prime P. */
const PRIME = Buffer.from(
  "FFFFFFFFFFFFFFFFC90FDAA22168C234C4C6628B80DC1CD129024E088A67CC74020BBEA63B139B22514A08798E3404DDEF9519B3CD3A431B302B0A6DF25F14374FE1356D6D51C245E485B576625E7EC6F44C42E9A63A36210000000000090563",
  "hex"
)

/** Bytes of a DH key (Ya, Yb, S): the prime's size. */
export const KEY_LENGTH = 96
/** Most bytes of PadA, PadB, PadC and PadD. */
export const MAX_PAD = 512
const VC_LENGTH = 8
const DISCARD = 1024

/**
 * Why an MSE handshake was given up:
 * - `"Key"`: the peer's public key is not a valid DH key;
 * - `"Sync"`: the synchronisation hash (responder) or the encrypted VC (initiator) did not come
 *   within the padding the spec allows;
 * - `"UnknownTorrent"`: the obfuscated info-hash matches none of ours;
 * - `"Verification"`: the decrypted VC is not 8 zero bytes (wrong key or not MSE);
 * - `"Padding"`: a length field over the spec's limit;
 * - `"NoMethod"`: no crypto method both sides accept.
 */
export type MseErrorReason = "Key" | "Sync" | "UnknownTorrent" | "Verification" | "Padding" | "NoMethod"

export class MseError extends Data.TaggedError("MseError")<{
  readonly reason: MseErrorReason
  readonly role: "initiator" | "responder"
  readonly detail: string
}> {
  override get message(): string {
    return `MSE handshake (${this.role}): ${this.detail}`
  }
}

/** How the stream goes on after a completed handshake. */
export interface MseResult {
  readonly infoHash: Uint8Array
  /** `"rc4"`: everything either way from here on goes through `decrypt` / `encrypt`. */
  readonly method: "plaintext" | "rc4"
  /** The peer's keystream, past the handshake: to apply to every byte the peer sends from now on. */
  readonly decrypt: Rc4
  /** Ours, past the handshake: to apply to every byte we send from now on. */
  readonly encrypt: Rc4
  /**
   * Stream bytes that came with the end of the handshake, already decrypted: for the responder the
   * initiator's IA first (its BitTorrent handshake) then whatever followed; for the initiator what
   * the responder sent after PadD (its BitTorrent handshake, usually).
   */
  readonly rest: Uint8Array
}

/** What `feed` found: not done yet, done, or given up (the caller closes the connection). */
export type MseStep = undefined | MseResult | MseError

// ------------------------------------------------------------------------------------------
// Diffie-Hellman and hashes

let group: NCrypto.DiffieHellman | undefined

/**
 * One DiffieHellman object for every handshake: creating one checks the prime, which takes tens
 * of milliseconds; setting a private key and computing with it takes well under one. Safe to share
 * because each use sets its key and finishes synchronously.
 */
const dh = (): NCrypto.DiffieHellman => (group ??= NCrypto.createDiffieHellman(PRIME, Buffer.from([2])))

const leftPad = (bytes: Buffer): Buffer => {
  if (bytes.length >= KEY_LENGTH) return bytes
  const out = Buffer.alloc(KEY_LENGTH)
  bytes.copy(out, KEY_LENGTH - bytes.length)
  return out
}

/** A DH key pair: a 160-bit random private key and its 96-byte public key. */
export class KeyPair {
  private readonly privateKey = NCrypto.randomBytes(20)
  readonly publicKey: Buffer

  constructor() {
    const g = dh()
    g.setPrivateKey(this.privateKey)
    g.generateKeys()
    this.publicKey = leftPad(g.getPublicKey())
  }

  /** S from the peer's public key, or undefined if it is not a valid key (0, 1, P-1, >= P). */
  secret(peerPublic: Uint8Array): Buffer | undefined {
    const g = dh()
    g.setPrivateKey(this.privateKey)
    try {
      return leftPad(g.computeSecret(peerPublic))
    } catch {
      return undefined
    }
  }
}

const sha1 = (...parts: ReadonlyArray<Uint8Array | string>): Buffer => {
  const h = NCrypto.createHash("sha1")
  for (const p of parts) h.update(p)
  return h.digest()
}

/** HASH('req2', SKEY): what the responder looks for among its torrents. */
export const streamKeyHash = (infoHash: Uint8Array): Buffer => sha1("req2", infoHash)

/** RC4 keyed with HASH(name, S, SKEY), its first 1024 bytes dropped. */
const cipher = (name: "keyA" | "keyB", secret: Uint8Array, infoHash: Uint8Array): Rc4 => {
  const rc4 = new Rc4(sha1(name, secret, infoHash))
  rc4.discard(DISCARD)
  return rc4
}

const randomPad = (max: number): Buffer => NCrypto.randomBytes(NCrypto.randomInt(0, max + 1))

/** VC, a 32-bit crypto field, a 16-bit pad length and that many zero bytes (steps 3 and 4). */
const vcBlock = (crypto: number, padLength: number, tail: number): Buffer => {
  const out = Buffer.alloc(VC_LENGTH + 4 + 2 + padLength + tail)
  out.writeUInt32BE(crypto, VC_LENGTH)
  out.writeUInt16BE(padLength, VC_LENGTH + 4)
  return out
}

/** Index of `needle` in `hay[from, to)` (`to` bounds where the needle may start), or -1. */
const indexIn = (hay: Buffer, needle: Uint8Array, from: number, to: number): number => {
  const at = hay.indexOf(needle, from)
  return at >= 0 && at <= to ? at : -1
}

/**
 * Every byte received so far (offsets count from the stream's start: the padding limits are
 * absolute), and how many the machine consumed. A handshake is at most ~66 KiB.
 */
class Input {
  buffer: Buffer = Buffer.alloc(0)
  pos = 0

  push(chunk: Uint8Array): void {
    this.buffer = Buffer.concat([this.buffer, chunk])
  }

  get available(): number {
    return this.buffer.length - this.pos
  }

  /** The next `n` bytes (a copy), decrypted with `rc4` if given. */
  take(n: number, rc4?: Rc4): Buffer {
    const out = Buffer.from(this.buffer.subarray(this.pos, this.pos + n))
    this.pos += n
    rc4?.process(out)
    return out
  }

  /** What is left, decrypted with `rc4` if given. */
  rest(rc4?: Rc4): Buffer {
    return this.take(this.available, rc4)
  }
}

// ------------------------------------------------------------------------------------------
// The initiator (A)

export interface InitiatorOptions {
  readonly infoHash: Uint8Array
  /** crypto_provide: `CRYPTO_PLAINTEXT | CRYPTO_RC4` lets the responder choose. */
  readonly provide: number
  /** IA, sent encrypted with step 3: usually our BitTorrent handshake. At most 65535 bytes. */
  readonly initialPayload: Uint8Array
  readonly send: (bytes: Uint8Array) => void
  /** Most bytes of PadA (random length up to it). Default 512; tests set 0 or the maximum. */
  readonly maxPad?: number
}

/** The side that opened the connection. `start` sends step 1; `feed` the peer's bytes. */
export class Initiator {
  private readonly keys = new KeyPair()
  private readonly input = new Input()
  private state: "key" | "sync" | "select" | "padD" | "done" = "key"
  private decrypt: Rc4 | undefined
  private encrypt: Rc4 | undefined
  private vcPattern: Buffer | undefined
  private select = 0
  private padD = 0

  constructor(private readonly options: InitiatorOptions) {}

  start(): void {
    this.options.send(Buffer.concat([this.keys.publicKey, randomPad(this.options.maxPad ?? MAX_PAD)]))
  }

  feed(chunk: Uint8Array): MseStep {
    if (this.state === "done") return undefined
    this.input.push(chunk)
    const input = this.input
    for (;;) {
      switch (this.state) {
        case "key": {
          if (input.available < KEY_LENGTH) return undefined
          const secret = this.keys.secret(input.take(KEY_LENGTH))
          if (secret === undefined)
            return this.fail("Key", "the responder's public key is not a valid DH key")
          this.sendStep3(secret)
          this.state = "sync"
          break
        }
        case "sync": {
          // PadB (up to 512 bytes) then ENCRYPT(VC): 8 bytes of the responder's keystream.
          const at = indexIn(input.buffer, this.vcPattern!, KEY_LENGTH, KEY_LENGTH + MAX_PAD)
          if (at < 0) {
            if (input.buffer.length >= KEY_LENGTH + MAX_PAD + VC_LENGTH)
              return this.fail("Sync", "no encrypted VC within 512 bytes of padding")
            return undefined
          }
          input.pos = at + VC_LENGTH
          this.state = "select"
          break
        }
        case "select": {
          if (input.available < 6) return undefined
          const field = input.take(6, this.decrypt)
          this.select = field.readUInt32BE(0)
          this.padD = field.readUInt16BE(4)
          if (this.padD > MAX_PAD) return this.fail("Padding", `len(PadD) ${this.padD} is over ${MAX_PAD}`)
          if (
            (this.select !== CRYPTO_PLAINTEXT && this.select !== CRYPTO_RC4) ||
            (this.select & this.options.provide) === 0
          )
            return this.fail("NoMethod", `crypto_select 0x${this.select.toString(16)} is not one we provided`)
          this.state = "padD"
          break
        }
        case "padD": {
          if (input.available < this.padD) return undefined
          input.take(this.padD, this.decrypt)
          this.state = "done"
          const rc4 = this.select === CRYPTO_RC4
          return {
            infoHash: this.options.infoHash,
            method: rc4 ? "rc4" : "plaintext",
            decrypt: this.decrypt!,
            encrypt: this.encrypt!,
            rest: input.rest(rc4 ? this.decrypt : undefined)
          }
        }
      }
    }
  }

  private sendStep3(secret: Buffer): void {
    const { infoHash, initialPayload, provide } = this.options
    this.encrypt = cipher("keyA", secret, infoHash)
    this.decrypt = cipher("keyB", secret, infoHash)
    // The responder's encrypted VC is its keystream over zeros; finding it also moves `decrypt` past it.
    this.vcPattern = Buffer.alloc(VC_LENGTH)
    this.decrypt.process(this.vcPattern)
    const req1 = sha1("req1", secret)
    const req2 = streamKeyHash(infoHash)
    const req3 = sha1("req3", secret)
    for (let k = 0; k < 20; k++) req2[k]! ^= req3[k]!
    const block = vcBlock(provide, 0, 2 + initialPayload.length)
    block.writeUInt16BE(initialPayload.length, VC_LENGTH + 6)
    block.set(initialPayload, VC_LENGTH + 8)
    this.encrypt.process(block)
    this.options.send(Buffer.concat([req1, req2, block]))
  }

  private fail(reason: MseErrorReason, detail: string): MseError {
    this.state = "done"
    return new MseError({ reason, role: "initiator", detail })
  }
}

// ------------------------------------------------------------------------------------------
// The responder (B)

export interface ResponderOptions {
  /** The info-hashes we serve (looked at once, when step 3 names one). */
  readonly infoHashes: () => Iterable<Uint8Array>
  readonly send: (bytes: Uint8Array) => void
  /** crypto_select from the initiator's crypto_provide; 0 refuses. Default: `preferPlaintext`. */
  readonly select?: (provide: number) => number
  /** Most bytes of PadB (random length up to it). Default 512. */
  readonly maxPad?: number
}

/**
 * Plaintext after the handshake whenever the initiator allows it: the data path then costs what
 * a plaintext connection does. RC4 only for an initiator that allows nothing else.
 */
export const preferPlaintext = (provide: number): number =>
  (provide & CRYPTO_PLAINTEXT) !== 0 ? CRYPTO_PLAINTEXT : (provide & CRYPTO_RC4) !== 0 ? CRYPTO_RC4 : 0

/** The side that accepted the connection: `feed` it everything the initiator sends, from byte 0. */
export class Responder {
  private readonly keys = new KeyPair()
  private readonly input = new Input()
  private state: "key" | "sync" | "skey" | "vc" | "padC" | "ia" | "done" = "key"
  private secret: Buffer | undefined
  private req1: Buffer | undefined
  private infoHash: Uint8Array | undefined
  private decrypt: Rc4 | undefined
  private encrypt: Rc4 | undefined
  private provide = 0
  private padC = 0
  private iaLength = 0

  constructor(private readonly options: ResponderOptions) {}

  feed(chunk: Uint8Array): MseStep {
    if (this.state === "done") return undefined
    this.input.push(chunk)
    const input = this.input
    for (;;) {
      switch (this.state) {
        case "key": {
          if (input.available < KEY_LENGTH) return undefined
          this.secret = this.keys.secret(input.take(KEY_LENGTH))
          if (this.secret === undefined)
            return this.fail("Key", "the initiator's public key is not a valid DH key")
          this.req1 = sha1("req1", this.secret)
          this.options.send(Buffer.concat([this.keys.publicKey, randomPad(this.options.maxPad ?? MAX_PAD)]))
          this.state = "sync"
          break
        }
        case "sync": {
          // PadA (up to 512 bytes) then HASH('req1', S).
          const at = indexIn(input.buffer, this.req1!, KEY_LENGTH, KEY_LENGTH + MAX_PAD)
          if (at < 0) {
            if (input.buffer.length >= KEY_LENGTH + MAX_PAD + 20)
              return this.fail("Sync", "no HASH('req1', S) within 512 bytes of padding")
            return undefined
          }
          input.pos = at + 20
          this.state = "skey"
          break
        }
        case "skey": {
          if (input.available < 20) return undefined
          const obfuscated = input.take(20)
          const req3 = sha1("req3", this.secret!)
          for (let k = 0; k < 20; k++) obfuscated[k]! ^= req3[k]!
          for (const infoHash of this.options.infoHashes())
            if (streamKeyHash(infoHash).equals(obfuscated)) {
              this.infoHash = infoHash
              break
            }
          if (this.infoHash === undefined)
            return this.fail("UnknownTorrent", "the obfuscated info-hash is none of our torrents")
          this.decrypt = cipher("keyA", this.secret!, this.infoHash)
          this.encrypt = cipher("keyB", this.secret!, this.infoHash)
          this.state = "vc"
          break
        }
        case "vc": {
          if (input.available < VC_LENGTH + 6) return undefined
          const block = input.take(VC_LENGTH + 6, this.decrypt)
          for (let k = 0; k < VC_LENGTH; k++)
            if (block[k] !== 0) return this.fail("Verification", "the decrypted VC is not zero")
          this.provide = block.readUInt32BE(VC_LENGTH)
          this.padC = block.readUInt16BE(VC_LENGTH + 4)
          if (this.padC > MAX_PAD) return this.fail("Padding", `len(PadC) ${this.padC} is over ${MAX_PAD}`)
          this.state = "padC"
          break
        }
        case "padC": {
          if (input.available < this.padC + 2) return undefined
          this.iaLength = input.take(this.padC + 2, this.decrypt).readUInt16BE(this.padC)
          this.state = "ia"
          break
        }
        case "ia": {
          if (input.available < this.iaLength) return undefined
          const ia = input.take(this.iaLength, this.decrypt)
          const select = (this.options.select ?? preferPlaintext)(this.provide)
          if ((select !== CRYPTO_PLAINTEXT && select !== CRYPTO_RC4) || (select & this.provide) === 0)
            return this.fail(
              "NoMethod",
              `crypto_provide 0x${this.provide.toString(16)} offers nothing we accept`
            )
          const reply = vcBlock(select, 0, 0)
          this.encrypt!.process(reply)
          this.options.send(reply)
          this.state = "done"
          const rc4 = select === CRYPTO_RC4
          const rest = input.rest(rc4 ? this.decrypt : undefined)
          return {
            infoHash: this.infoHash!,
            method: rc4 ? "rc4" : "plaintext",
            decrypt: this.decrypt!,
            encrypt: this.encrypt!,
            rest: rest.length === 0 ? ia : Buffer.concat([ia, rest])
          }
        }
      }
    }
  }

  private fail(reason: MseErrorReason, detail: string): MseError {
    this.state = "done"
    return new MseError({ reason, role: "responder", detail })
  }
}
