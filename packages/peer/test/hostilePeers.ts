/** Raw sockets that misbehave toward a seeder (no client needed), shared by the hostile-peer tests. */
import * as Net from "node:net"
import { Session, Wire } from "@ezio/peer"
import type { Metainfo } from "@ezio/torrent"
import { Effect } from "effect"

/** Raw sockets to our seeder on `port` that misbehave (no client needed). */
export const hostilePeers = (port: number, meta: Metainfo.Metainfo) => {
  const connect = () =>
    Effect.async<Net.Socket>((resume) => {
      const socket = Net.connect({ host: "127.0.0.1", port }, () => resume(Effect.succeed(socket)))
    })
  const closed = (socket: Net.Socket) =>
    Effect.async<boolean>((resume) => {
      if (socket.destroyed) return resume(Effect.succeed(true))
      socket.once("close", () => resume(Effect.succeed(true)))
    }).pipe(
      Effect.timeout("5 seconds"),
      Effect.orElseSucceed(() => false)
    )
  const handshake = (infoHash: Uint8Array) =>
    Wire.encodeHandshake({ infoHash, peerId: Session.makePeerId(), fast: true })
  const interestedAndRequests = (requests: ReadonlyArray<[number, number, number]>) =>
    Buffer.concat([
      Buffer.from(Wire.encode({ _tag: "Interested" })),
      ...requests.map(([i, b, l]) => Buffer.from(Wire.encodeRequest(i, b, l)))
    ])
  /** `n` peers that ask for every block four times over and never read. */
  const flood = (n: number) =>
    Effect.gen(function* () {
      const flooders: Array<Net.Socket> = []
      for (let k = 0; k < n; k++) {
        const s = yield* connect()
        s.pause()
        s.write(handshake(meta.infoHash))
        const reqs: Array<[number, number, number]> = []
        for (let round = 0; round < 4; round++)
          for (let i = 0; i < meta.pieceCount; i++)
            for (let b = 0; b < 16; b++) reqs.push([i, b * 16384, 16384])
        s.write(interestedAndRequests(reqs))
        flooders.push(s)
      }
      return flooders
    })
  /** `n` peers that complete the handshake, read what comes, and ask for nothing. */
  const idle = (n: number) =>
    Effect.forEach(
      Array.from({ length: n }),
      () =>
        Effect.map(connect(), (s) => {
          s.on("data", () => {})
          s.on("error", () => {})
          s.write(handshake(meta.infoHash))
          return s
        }),
      { concurrency: 16 }
    )
  /** `n` peers that never read: interested, with `queue` requests for random blocks, until `stop`. */
  const neverRead = (n: number, queue: number) =>
    Effect.gen(function* () {
      const blocks = Math.floor(meta.pieceLength / 16384)
      const requests = Array.from({ length: queue }, (): [number, number, number] => [
        Math.floor(Math.random() * (meta.pieceCount - 1)),
        Math.floor(Math.random() * blocks) * 16384,
        16384
      ])
      const sockets = yield* Effect.forEach(
        Array.from({ length: n }),
        () =>
          Effect.map(connect(), (s) => {
            s.pause()
            s.on("error", () => {})
            s.write(handshake(meta.infoHash))
            s.write(interestedAndRequests(requests))
            return s
          }),
        { concurrency: 16 }
      )
      return { sockets, stop: () => sockets.forEach((s) => s.destroy()) }
    })
  return { connect, closed, handshake, interestedAndRequests, flood, idle, neverRead }
}
