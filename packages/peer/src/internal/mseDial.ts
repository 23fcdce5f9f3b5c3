// Outgoing connections that open with MSE/PE (wire/mse.ts) instead of the plaintext handshake:
// our BitTorrent handshake travels as the initial payload, and once the responder has chosen,
// the connection is handed to the swarm exactly as a plaintext dial's is (swarmPeers.ts `dial`),
// with an RC4 transform on both directions if RC4 was chosen. With "prefer", a peer that does
// not answer MSE (it closed, reset, or sent nonsense) is dialled again at once in plaintext.
import * as Net from "node:net"
import * as Admission from "./admission.js"
import * as MseSocket from "./mseSocket.js"
import * as Peers from "./swarmPeers.js"
import * as Mse from "./wire/mse.js"

/**
 * How a session opens connections: `"plaintext"` (the BitTorrent handshake, cheapest, and every
 * client accepts it), `"prefer"` (MSE offering plaintext or RC4, the peer chooses; plaintext
 * again if the peer does not speak MSE), `"require"` (MSE only: for peers that refuse plaintext
 * handshakes). Incoming connections are accepted either way.
 */
export type Encryption = "plaintext" | "prefer" | "require"

/** What an encrypted dial needs of the swarm, besides what a plaintext one does. */
export interface MseDialCore extends Peers.PeersCore {
  readonly infoHash: Uint8Array
  /** Our BitTorrent handshake, sent as MSE's initial payload. */
  readonly handshakeBytes: Uint8Array
}

/** Opens one connection for the dialer with MSE, and tells the dialer how that went. */
export const dial = (
  core: MseDialCore,
  host: string,
  port: number,
  address: string,
  mode: "prefer" | "require"
): void => {
  if (
    core.closed ||
    core.smartBan.isBanned(address) ||
    (core.connections.size >= core.options.maxPeers &&
      Admission.victim(core.connections, core.now()) === undefined)
  )
    return core.dialer.failed(address)
  // Reads land in the swarm's reused buffer, as in a plaintext dial: first the handshake's,
  // then the connection's (decrypted in place when RC4 was chosen).
  let feed: ((chunk: Uint8Array) => void) | undefined
  const socket = Net.connect({
    host,
    port,
    onread: {
      buffer: core.readBuffer,
      callback: (n, buffer) => {
        feed?.(buffer.subarray(0, n))
        return true
      }
    }
  })
  socket.setTimeout(10_000, () => socket.destroy(new Error("connect timed out")))
  let phase: "connecting" | "handshake" | "settled" = "connecting"
  let deadline: NodeJS.Timeout | undefined
  const failed = () => {
    if (phase === "settled") return
    const inHandshake = phase === "handshake"
    phase = "settled"
    clearTimeout(deadline)
    // The peer took the TCP connection but not MSE: most likely a client without it.
    if (inHandshake && mode === "prefer" && !core.closed) return Peers.dial(core, host, port, address)
    core.dialer.failed(address)
  }
  socket.once("error", failed)
  socket.once("close", failed)
  socket.once("connect", () => {
    phase = "handshake"
    deadline = setTimeout(() => socket.destroy(), MseSocket.HANDSHAKE_DEADLINE_MS).unref()
    const initiator = new Mse.Initiator({
      infoHash: core.infoHash,
      provide: Mse.CRYPTO_PLAINTEXT | Mse.CRYPTO_RC4,
      initialPayload: core.handshakeBytes,
      send: (bytes) => socket.write(bytes)
    })
    feed = (chunk) => {
      const result = initiator.feed(chunk)
      if (result === undefined) return
      if (result instanceof Mse.MseError) return void socket.destroy()
      phase = "settled"
      clearTimeout(deadline)
      socket.setTimeout(0)
      feed = undefined
      core.dialer.opened(address)
      const receiver = core.add(socket, true)
      if (receiver === undefined) return core.dialer.failed(address)
      core.listenAddress.set(receiver, {
        ip: Peers.unmapped(socket.remoteAddress ?? host),
        port,
        key: address
      })
      if (result.method === "rc4") {
        MseSocket.encryptWrites(socket, result.encrypt)
        const decrypt = result.decrypt
        feed = (chunk) => {
          decrypt.process(chunk)
          receiver.receive(chunk)
        }
      } else feed = (chunk) => receiver.receive(chunk)
      receiver.startOutgoing(true)
      if (result.rest.length > 0) receiver.receive(result.rest)
    }
    initiator.start()
  })
}
