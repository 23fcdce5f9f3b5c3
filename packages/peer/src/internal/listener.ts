// A session's listening socket: each incoming connection's 68-byte handshake names the torrent,
// and the socket goes to that torrent's swarm, or to the metadata fetch of a magnet link not
// added yet; anything else is closed. A connection that does not start with a plaintext
// handshake is answered with MSE/PE (mseSocket.ts), and routed by the handshake inside it.
import * as Net from "node:net"
import * as Effect from "effect/Effect"
import type * as Scope from "effect/Scope"
import * as Wire from "../Wire.js"
import type { MetadataFetcher } from "./metadata.js"
import * as MseSocket from "./mseSocket.js"
import { checkProtocol } from "./wire/handshake.js"
import type { SwarmCore } from "./swarm.js"

/** Where incoming connections go, by info-hash (hex). */
export interface Routes {
  readonly swarms: ReadonlyMap<string, SwarmCore>
  /** Magnet links whose metadata is being fetched, or fetched and waiting for `add`. */
  readonly fetchers: ReadonlyMap<string, MetadataFetcher>
}

/** The info-hashes an MSE initiator may name. */
const infoHashes = (routes: Routes) =>
  function* (): Generator<Uint8Array> {
    for (const hex of routes.swarms.keys()) yield Buffer.from(hex, "hex")
    for (const hex of routes.fetchers.keys()) yield Buffer.from(hex, "hex")
  }

const route = (routes: Routes, socket: Net.Socket, afterMse?: Buffer): void => {
  // Read the 68-byte handshake, then hand the socket to the swarm it names.
  let buffered = afterMse ?? Buffer.alloc(0)
  if (afterMse === undefined) {
    socket.setTimeout(20_000, () => socket.destroy())
    socket.on("error", () => socket.destroy())
  }
  const onData = (chunk: Buffer) => {
    buffered = Buffer.concat([buffered, chunk])
    consume()
  }
  const consume = () => {
    if (checkProtocol(buffered, 0, Math.min(buffered.length, 20), 0) !== undefined) {
      if (afterMse !== undefined) return socket.destroy()
      // Not "\x13BitTorrent protocol": an MSE initiator's public key, or garbage MSE refuses.
      socket.off("data", onData)
      return MseSocket.respond(socket, buffered, infoHashes(routes), (rest) => route(routes, socket, rest))
    }
    if (buffered.length < Wire.HANDSHAKE_LENGTH) return
    socket.off("data", onData)
    socket.pause()
    socket.setTimeout(0)
    const decoded = Wire.decodeHandshake(buffered)
    if (decoded._tag === "Left") return socket.destroy()
    const hex = Buffer.from(decoded.right.infoHash).toString("hex")
    const core = routes.swarms.get(hex)
    if (core === undefined) {
      const fetcher = routes.fetchers.get(hex)
      if (fetcher === undefined) return socket.destroy()
      fetcher.incoming(socket, decoded.right, buffered.subarray(Wire.HANDSHAKE_LENGTH))
      return socket.resume()
    }
    const connection = core.add(socket, false)
    connection?.startIncoming(decoded.right, buffered.subarray(Wire.HANDSHAKE_LENGTH))
    socket.resume()
  }
  socket.on("data", onData)
  if (buffered.length > 0) consume()
}

/** Listens on `host:port` until the scope closes; the port it got (for port 0, the one chosen). */
export const listen = (
  host: string,
  port: number,
  routes: Routes
): Effect.Effect<number, Error, Scope.Scope> =>
  Effect.gen(function* () {
    const server = Net.createServer({ noDelay: true })
    server.on("connection", (socket) => route(routes, socket))
    const bound = yield* Effect.async<number, Error>((resume) => {
      const onError = (cause: Error) => resume(Effect.fail(cause))
      server.once("error", onError)
      server.listen({ host, port }, () => {
        server.off("error", onError)
        resume(Effect.succeed((server.address() as Net.AddressInfo).port))
      })
    })
    yield* Effect.addFinalizer(() =>
      Effect.async<void>((resume) => {
        server.close(() => resume(Effect.void))
      })
    )
    return bound
  })
