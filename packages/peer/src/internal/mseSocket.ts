// MSE/PE (wire/mse.ts) on a node:net socket: the responder for the listener, and the RC4
// transform a socket gets when RC4 was selected, so that everything above it (connection.ts,
// upload.ts, a magnet's metadata fetch) reads and writes the plaintext stream as it does today.
import type * as Net from "node:net"
import * as Mse from "./wire/mse.js"
import type { Rc4 } from "./wire/rc4.js"

/** Longest an MSE handshake may take, from its first byte to the end of step 4. */
export const HANDSHAKE_DEADLINE_MS = 20_000

/**
 * Every write of `socket` from now on goes out RC4-encrypted: the bytes are encrypted into a
 * copy (the caller's buffer, often a pool block still being sent elsewhere, stays as it is), in
 * the order of the writes, so the keystream matches the peer's.
 */
export const encryptWrites = (socket: Net.Socket, rc4: Rc4): void => {
  const write = socket.write.bind(socket) as (
    chunk: Uint8Array,
    callback?: (error?: Error | null) => void
  ) => boolean
  socket.write = ((
    chunk: Uint8Array | string,
    encoding?: BufferEncoding | ((error?: Error | null) => void),
    callback?: (error?: Error | null) => void
  ): boolean => {
    const bytes =
      typeof chunk === "string" ? Buffer.from(chunk, typeof encoding === "string" ? encoding : "utf8") : chunk
    const out = Buffer.allocUnsafe(bytes.length)
    rc4.process(bytes, out)
    return write(out, typeof encoding === "function" ? encoding : callback)
  }) as Net.Socket["write"]
}

/**
 * Every chunk `socket` reads from now on ("data" events) is RC4-decrypted in place before anyone
 * sees it. Node hands each read to the stream's `push`, in order; the chunk is a fresh Buffer
 * nobody else holds. (A socket created with `onread` bypasses `push`: its callback decrypts.)
 */
export const decryptReads = (socket: Net.Socket, rc4: Rc4): void => {
  const push = socket.push.bind(socket)
  socket.push = (chunk: unknown, encoding?: BufferEncoding): boolean => {
    if (chunk instanceof Uint8Array) rc4.process(chunk)
    return push(chunk, encoding)
  }
}

/**
 * Answers an MSE handshake on an incoming socket whose first bytes (`first`) are not a plaintext
 * BitTorrent handshake. On success the socket carries the plaintext stream (through an RC4
 * transform if RC4 was selected) and `onStream` gets its first bytes: the initiator's IA (its
 * BitTorrent handshake) and whatever came after. On failure, or past the deadline, the socket is
 * destroyed. Takes over the socket's "data" events until then.
 */
export const respond = (
  socket: Net.Socket,
  first: Uint8Array,
  infoHashes: () => Iterable<Uint8Array>,
  onStream: (rest: Buffer) => void,
  deadlineMs = HANDSHAKE_DEADLINE_MS
): void => {
  const responder = new Mse.Responder({ infoHashes, send: (bytes) => socket.write(bytes) })
  // Unref'd: a handshake in progress does not keep the process alive.
  const timer = setTimeout(() => socket.destroy(), deadlineMs).unref()
  const stop = () => {
    clearTimeout(timer)
    socket.off("data", onData)
    socket.off("close", stop)
  }
  const step = (chunk: Uint8Array): void => {
    const result = responder.feed(chunk)
    if (result === undefined) return
    stop()
    if (result instanceof Mse.MseError) {
      socket.destroy()
      return
    }
    if (result.method === "rc4") {
      encryptWrites(socket, result.encrypt)
      decryptReads(socket, result.decrypt)
    }
    onStream(Buffer.from(result.rest))
  }
  const onData = (chunk: Buffer) => step(chunk)
  socket.on("data", onData)
  socket.on("close", stop)
  step(first)
}
