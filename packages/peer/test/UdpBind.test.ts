/**
 * The UDP tracker client's socket honours `udpBindAddress` (the CLI's `--bind`): the kernel's own
 * table of UDP sockets (/proc/net/udp) shows the address the client's socket is bound to, found by
 * the port a tracker saw its packet come from.
 */
import * as Dgram from "node:dgram"
import * as Fs from "node:fs"
import { assert, describe, it } from "@effect/vitest"
import { Effect } from "effect"
import * as Tracker from "../src/Tracker.js"
import { bytes20, eventually, request } from "./trackerSupport.js"

/** A tracker that answers nothing and records where each packet came from. */
const silentTracker = Effect.acquireRelease(
  Effect.async<{ url: string; from: Array<Dgram.RemoteInfo>; socket: Dgram.Socket }>((resume) => {
    const socket = Dgram.createSocket("udp4")
    const from: Array<Dgram.RemoteInfo> = []
    socket.on("message", (_message, remote) => from.push(remote))
    socket.bind(0, "127.0.0.1", () =>
      resume(Effect.succeed({ url: `udp://127.0.0.1:${socket.address().port}/announce`, from, socket }))
    )
  }),
  ({ socket }) => Effect.sync(() => socket.close())
)

/** The local address (as /proc/net/udp writes it: hex, host byte order) of the UDP socket on `port`. */
const localAddressOf = (port: number): string | undefined => {
  const suffix = `:${port.toString(16).toUpperCase().padStart(4, "0")}`
  for (const line of Fs.readFileSync("/proc/net/udp", "utf8").split("\n").slice(1)) {
    const local = line.trim().split(/\s+/)[1]
    if (local?.endsWith(suffix)) return local.slice(0, -suffix.length)
  }
  return undefined
}

/** Announces once to a silent tracker and returns the local address of the socket it came from. */
const boundAddress = (options: Tracker.Options) =>
  Effect.gen(function* () {
    const server = yield* silentTracker
    const client = yield* Tracker.make({ udpTimeout: "20 millis", udpMaxRetransmits: 0, ...options })
    const announce = yield* Effect.fork(client.announce(server.url, request(bytes20(1), bytes20(2), 6881)))
    yield* eventually(() => server.from.length > 0, "the connect request")
    const address = localAddressOf(server.from[0]!.port)
    yield* Effect.ignore(announce.await)
    return address
  }).pipe(Effect.scoped)

describe.skipIf(process.platform !== "linux")("UDP tracker bind address", () => {
  it.live("with udpBindAddress 127.0.0.1 the socket is bound to it; without, to every address", () =>
    Effect.gen(function* () {
      assert.strictEqual(yield* boundAddress({ udpBindAddress: "127.0.0.1" }), "0100007F")
      assert.strictEqual(yield* boundAddress({}), "00000000")
    })
  )
})
