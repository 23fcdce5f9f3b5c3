/**
 * Initial seeding's tail: once every piece has left the seeder, an ezio peer furthest behind is
 * suggested the pieces it lacks and served pieces another peer has (which it was refused before),
 * while the pieces sent more than once stay under `TAIL_SHARE` of the torrent.
 */
import * as NCrypto from "node:crypto"
import * as NFS from "node:fs"
import * as Net from "node:net"
import * as NOS from "node:os"
import * as NPath from "node:path"
import { assert, describe, it } from "@effect/vitest"
import { DiskIo } from "@ezio/disk-io"
import { Session, Wire } from "@ezio/peer"
import { BufferPool } from "@ezio/pool"
import { Bitfield, Create, Hasher, Layout, Storage } from "@ezio/storage"
import { Effect, Either, Layer, type Scope } from "effect"
import { TAIL_SHARE } from "../src/internal/initialSeeding.js"

/** One block a piece: a request is a whole piece. */
const PIECE = 16 * 1024
const PIECES = 25

const env = DiskIo.layer().pipe(
  Layer.provideMerge(Hasher.layer({ threads: 1 })),
  Layer.provideMerge(BufferPool.layer({ capacity: 4 * 1024 * 1024 }))
)

/** A seeder doing initial seeding of `PIECES` random pieces of `pieceLength` on 127.0.0.1. */
const seederOf = (pieceLength: number) =>
  Effect.gen(function* () {
    const dir = yield* Effect.acquireRelease(
      Effect.sync(() => NFS.mkdtempSync(NPath.join(NOS.tmpdir(), "ezio-tail-"))),
      (dir) => Effect.sync(() => NFS.rmSync(dir, { recursive: true, force: true }))
    )
    const file = NPath.join(dir, "disk.img")
    NFS.writeFileSync(file, NCrypto.randomBytes(PIECES * pieceLength))
    const meta = yield* Create.fromPath(file, { pieceLength })
    const have = Bitfield.make(meta.pieceCount)
    Bitfield.setAll(have)
    const layout = Either.getOrThrow(Layout.fromMetainfo(meta))
    const storage = yield* Storage.makeDirectory({ layout, root: dir, mode: "read" })
    const session = yield* Session.make({ host: "127.0.0.1", port: 0 })
    const swarm = yield* session.add({ metainfo: meta, storage, have, initialSeeding: true })
    return { meta, port: session.port, swarm }
  })
const seeder = seederOf(PIECE)

interface Peer {
  readonly socket: Net.Socket
  readonly unchoked: Promise<void>
  /** Resolves once the blocks and rejects received together reach `count`. */
  readonly answered: (count: number) => Promise<void>
  /** Resolves once `count` suggestions have arrived. */
  readonly suggestions: (count: number) => Promise<void>
  readonly pieces: Set<number>
  readonly rejected: Set<number>
  readonly suggested: Array<number>
}

/** A raw peer that says it is ezio (the key in its extension handshake), has nothing, is interested. */
const ezioPeer = (port: number, infoHash: Uint8Array): Effect.Effect<Peer, never, Scope.Scope> =>
  Effect.acquireRelease(
    Effect.sync(() => {
      const pieces = new Set<number>()
      const rejected = new Set<number>()
      const suggested: Array<number> = []
      let blocks = 0
      let rejects = 0
      let unchoked: () => void = () => {}
      const waiting: Array<{ count: number; suggestions: boolean; resolve: () => void }> = []
      const check = () => {
        for (const w of waiting.splice(0))
          if ((w.suggestions ? suggested.length : blocks + rejects) >= w.count) w.resolve()
          else waiting.push(w)
      }
      const wait = (count: number, suggestions: boolean) =>
        new Promise<void>((resolve) => {
          waiting.push({ count, suggestions, resolve })
          check()
        })
      const parser = new Wire.FrameParser(
        {
          onMessage: (m) => {
            if (m._tag === "Unchoke") unchoked()
            else if (m._tag === "Piece") {
              pieces.add(m.index)
              blocks++
            } else if (m._tag === "RejectRequest") {
              rejected.add(m.index)
              rejects++
            } else if (m._tag === "Suggest") suggested.push(m.index)
            check()
          }
        },
        { handshake: true }
      )
      const socket = Net.connect({ host: "127.0.0.1", port })
      socket.on("data", (chunk) => {
        const error = parser.feed(chunk)
        if (error !== undefined) socket.destroy(new Error(error.message))
      })
      socket.on("error", () => {})
      socket.write(
        Wire.encodeHandshake({ infoHash, peerId: Session.makePeerId(), fast: true, extensions: true })
      )
      socket.write(Wire.encodeExtensionHandshake({ m: {}, v: "tail test", ezio: 1 }))
      socket.write(Wire.encode({ _tag: "HaveNone" }))
      socket.write(Wire.encode({ _tag: "Interested" }))
      return {
        socket,
        unchoked: new Promise<void>((resolve) => (unchoked = resolve)),
        answered: (count: number) => wait(count, false),
        suggestions: (count: number) => wait(count, true),
        pieces,
        rejected,
        suggested
      } satisfies Peer
    }),
    (peer) => Effect.sync(() => peer.socket.destroy())
  )

const ask = (peer: Peer, pieces: ReadonlyArray<number>, begin = 0) =>
  peer.socket.write(Buffer.concat(pieces.map((piece) => Wire.encodeRequest(piece, begin, PIECE))))

describe("initial seeding's tail", () => {
  it.live(
    "once every piece is out, the peer furthest behind is suggested pieces and served some others have",
    () =>
      Effect.gen(function* () {
        const budget = Math.floor(PIECES * TAIL_SHARE)
        assert.isAtLeast(budget, 2)
        const { meta, port } = yield* seeder
        const all = Array.from({ length: PIECES }, (_, i) => i)
        // a gets every piece once: every piece has left the seeder, and a says it has them.
        const a = yield* ezioPeer(port, meta.infoHash)
        yield* Effect.promise(() => a.unchoked)
        ask(a, all)
        yield* Effect.promise(() => a.answered(PIECES)).pipe(Effect.timeout("30 seconds"))
        assert.strictEqual(a.pieces.size, PIECES)
        a.socket.write(Buffer.concat(all.map((piece) => Wire.encodeHave(piece))))
        yield* Effect.sleep("300 millis")
        // b comes late, furthest behind: every piece it asks for, a has.
        const b = yield* ezioPeer(port, meta.infoHash)
        yield* Effect.promise(() => b.unchoked)
        yield* Effect.promise(() => b.suggestions(1)).pipe(Effect.timeout("10 seconds"))
        assert.isAbove(b.suggested.length, 0, "the tail suggests pieces to the peer behind")
        for (const piece of b.suggested) assert.isTrue(piece >= 0 && piece < PIECES)
        const asked = all.slice(0, budget + 1)
        ask(b, asked)
        yield* Effect.promise(() => b.answered(asked.length)).pipe(Effect.timeout("10 seconds"))
        assert.strictEqual(b.pieces.size, budget, "served up to the tail's share")
        assert.strictEqual(b.rejected.size, 1, "then refused as before: a has it")
        assert.isTrue(b.rejected.has(asked[budget]!))
      }).pipe(Effect.provide(env), Effect.scoped),
    60_000
  )

  it.live(
    "not before every piece has left whole: while the last ones are on their way, the peer behind is refused",
    () =>
      Effect.gen(function* () {
        // Two blocks a piece: a asks for the first block of each, so every piece is asked for once
        // but none has left whole.
        const { meta, port } = yield* seederOf(2 * PIECE)
        const all = Array.from({ length: PIECES }, (_, i) => i)
        const a = yield* ezioPeer(port, meta.infoHash)
        yield* Effect.promise(() => a.unchoked)
        ask(a, all)
        yield* Effect.promise(() => a.answered(PIECES)).pipe(Effect.timeout("30 seconds"))
        a.socket.write(Buffer.concat(all.map((piece) => Wire.encodeHave(piece))))
        yield* Effect.sleep("300 millis")
        const b = yield* ezioPeer(port, meta.infoHash)
        yield* Effect.promise(() => b.unchoked)
        ask(b, [0])
        yield* Effect.promise(() => b.answered(1)).pipe(Effect.timeout("10 seconds"))
        assert.isTrue(b.rejected.has(0), "the link is the last pieces' until they are out")
        assert.strictEqual(b.pieces.size, 0)
        // The second halves: now every piece is out whole, and the tail serves b.
        ask(a, all, PIECE)
        yield* Effect.promise(() => a.answered(2 * PIECES)).pipe(Effect.timeout("30 seconds"))
        yield* Effect.sleep("600 millis")
        ask(b, [1])
        yield* Effect.promise(() => b.answered(2)).pipe(Effect.timeout("10 seconds"))
        assert.isTrue(b.pieces.has(1), "served in the tail")
      }).pipe(Effect.provide(env), Effect.scoped),
    60_000
  )
})
