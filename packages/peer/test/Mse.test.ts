/**
 * MSE/PE: RC4 against published test vectors, the handshake between two in-process ends
 * (plaintext and RC4 selected, any chunking), what the responder refuses and how many bytes and how
 * long it takes to, and the RC4 transform on real sockets.
 */
import * as NCrypto from "node:crypto"
import * as Net from "node:net"
import { describe, expect, it } from "@effect/vitest"
import { Effect } from "effect"
import * as MseSocket from "../src/internal/mseSocket.js"
import * as Mse from "../src/internal/wire/mse.js"
import { Rc4 } from "../src/internal/wire/rc4.js"

const hex = (b: Uint8Array) => Buffer.from(b).toString("hex")
const sha1 = (...parts: ReadonlyArray<Uint8Array | string>) => {
  const h = NCrypto.createHash("sha1")
  for (const p of parts) h.update(p)
  return h.digest()
}

const infoHash = NCrypto.randomBytes(20)
const otherHash = NCrypto.randomBytes(20)
const btHandshake = (ih: Uint8Array) =>
  Buffer.concat([Buffer.from("\x13BitTorrent protocol"), Buffer.alloc(8), ih, NCrypto.randomBytes(20)])

/** Both ends in memory: what each sent, delivered to the other in chunks of `chunk` bytes. */
const pair = (options: {
  readonly provide: number
  readonly served?: ReadonlyArray<Uint8Array>
  readonly chunk?: number
  readonly select?: (provide: number) => number
}) => {
  const toResponder: Array<Uint8Array> = []
  const toInitiator: Array<Uint8Array> = []
  const ia = btHandshake(infoHash)
  const initiator = new Mse.Initiator({
    infoHash,
    provide: options.provide,
    initialPayload: ia,
    send: (b) => toResponder.push(b)
  })
  const responder = new Mse.Responder({
    infoHashes: () => options.served ?? [otherHash, infoHash],
    send: (b) => toInitiator.push(b),
    ...(options.select !== undefined ? { select: options.select } : {})
  })
  const deliver = (queue: Array<Uint8Array>, to: { feed: (c: Uint8Array) => Mse.MseStep }) => {
    const bytes = Buffer.concat(queue.splice(0))
    const n = options.chunk ?? (bytes.length || 1)
    for (let at = 0; at < bytes.length; at += n) {
      const step = to.feed(bytes.subarray(at, at + n))
      if (step instanceof Mse.MseError) return step
      // The chunks after the last handshake byte are the caller's, as on a socket.
      if (step !== undefined) {
        const after = Buffer.from(bytes.subarray(at + n))
        if (step.method === "rc4") step.decrypt.process(after)
        return { ...step, rest: Buffer.concat([step.rest, after]) }
      }
    }
    return undefined
  }
  return { ia, initiator, responder, toResponder, toInitiator, deliver }
}

/** Runs the handshake to its end; the responder sends `reply` right after its step 4. */
const handshake = (p: ReturnType<typeof pair>, reply: Uint8Array) => {
  p.initiator.start()
  let responderResult: Mse.MseStep
  let initiatorResult: Mse.MseStep
  for (
    let round = 0;
    round < 4 && (responderResult === undefined || initiatorResult === undefined);
    round++
  ) {
    const r = p.deliver(p.toResponder, p.responder)
    if (r !== undefined) {
      responderResult = r
      if (!(r instanceof Mse.MseError)) {
        const out = Buffer.from(reply)
        if (r.method === "rc4") r.encrypt.process(out)
        p.toInitiator.push(out)
      }
    }
    const i = p.deliver(p.toInitiator, p.initiator)
    if (i !== undefined) initiatorResult = i
  }
  return { responderResult, initiatorResult }
}

describe("RC4", () => {
  it("matches the published test vectors, in one call or byte by byte", () => {
    const vectors: Array<[string, string, string]> = [
      ["Key", "Plaintext", "bbf316e8d940af0ad3"],
      ["Wiki", "pedia", "1021bf0420"],
      ["Secret", "Attack at dawn", "45a01f645fc35b383552544b9bf5"]
    ]
    for (const [key, plain, cipher] of vectors) {
      const whole = Buffer.from(plain)
      new Rc4(Buffer.from(key)).process(whole)
      expect(hex(whole)).toBe(cipher)
      const rc4 = new Rc4(Buffer.from(key))
      const out = Buffer.alloc(plain.length)
      for (let k = 0; k < plain.length; k++) rc4.process(Buffer.from(plain), out, k, k + 1)
      expect(hex(out)).toBe(cipher)
    }
  })
})

describe("MSE handshake", () => {
  it("selects plaintext when offered: the responder gets IA, the initiator the reply, both in the clear", () => {
    for (const chunk of [undefined, 1, 7, 100]) {
      const p = pair({ provide: Mse.CRYPTO_PLAINTEXT | Mse.CRYPTO_RC4, ...(chunk ? { chunk } : {}) })
      const reply = btHandshake(infoHash)
      const { responderResult, initiatorResult } = handshake(p, reply)
      if (!responderResult || responderResult instanceof Mse.MseError)
        throw new Error(String(responderResult))
      if (!initiatorResult || initiatorResult instanceof Mse.MseError)
        throw new Error(String(initiatorResult))
      expect(responderResult.method).toBe("plaintext")
      expect(hex(responderResult.infoHash)).toBe(hex(infoHash))
      expect(hex(responderResult.rest)).toBe(hex(p.ia))
      expect(initiatorResult.method).toBe("plaintext")
      expect(hex(initiatorResult.rest)).toBe(hex(reply))
    }
  })

  it("selects RC4 when it is all the initiator offers; the keystreams continue in both directions", () => {
    for (const chunk of [undefined, 3]) {
      const p = pair({ provide: Mse.CRYPTO_RC4, ...(chunk ? { chunk } : {}) })
      const reply = btHandshake(infoHash)
      const { responderResult: r, initiatorResult: i } = handshake(p, reply)
      if (!r || r instanceof Mse.MseError || !i || i instanceof Mse.MseError) throw new Error("no result")
      expect([r.method, i.method]).toEqual(["rc4", "rc4"])
      expect(hex(r.rest)).toBe(hex(p.ia))
      expect(hex(i.rest)).toBe(hex(reply))
      // A -> B and B -> A after the handshake: what one encrypts the other decrypts.
      const data = NCrypto.randomBytes(100_000)
      const wire = Buffer.from(data)
      i.encrypt.process(wire)
      expect(wire.equals(data)).toBe(false)
      r.decrypt.process(wire)
      expect(wire.equals(data)).toBe(true)
      const back = Buffer.from(data)
      r.encrypt.process(back)
      i.decrypt.process(back)
      expect(back.equals(data)).toBe(true)
    }
  })

  it("refuses an info-hash it does not serve, and a provide with nothing it accepts", () => {
    const unknown = handshake(pair({ provide: 3, served: [otherHash] }), new Uint8Array(0))
    expect(unknown.responderResult).toBeInstanceOf(Mse.MseError)
    expect((unknown.responderResult as Mse.MseError).reason).toBe("UnknownTorrent")
    const none = handshake(
      pair({ provide: Mse.CRYPTO_RC4, select: () => Mse.CRYPTO_PLAINTEXT }),
      new Uint8Array(0)
    )
    expect((none.responderResult as Mse.MseError).reason).toBe("NoMethod")
    // The initiator never got a step 4: it is still waiting, not fooled.
    expect(none.initiatorResult).toBeUndefined()
  })

  it("gives up on garbage after Ya + 512 bytes of padding + 20, not before", () => {
    const responder = new Mse.Responder({ infoHashes: () => [infoHash], send: () => {} })
    const garbage = NCrypto.randomBytes(Mse.KEY_LENGTH + Mse.MAX_PAD + 20)
    expect(responder.feed(garbage.subarray(0, garbage.length - 1))).toBeUndefined()
    const step = responder.feed(garbage.subarray(garbage.length - 1))
    expect(step).toBeInstanceOf(Mse.MseError)
    expect((step as Mse.MseError).reason).toBe("Sync")
    // Done: more bytes are ignored.
    expect(responder.feed(NCrypto.randomBytes(10_000))).toBeUndefined()
  })

  it("the initiator gives up when no encrypted VC comes within Yb + 512 bytes of padding + 8", () => {
    const initiator = new Mse.Initiator({
      infoHash,
      provide: Mse.CRYPTO_PLAINTEXT | Mse.CRYPTO_RC4,
      initialPayload: btHandshake(infoHash),
      send: () => {}
    })
    initiator.start()
    const reply = Buffer.concat([new Mse.KeyPair().publicKey, NCrypto.randomBytes(Mse.MAX_PAD + 8)])
    expect(initiator.feed(reply.subarray(0, reply.length - 1))).toBeUndefined()
    expect((initiator.feed(reply.subarray(reply.length - 1)) as Mse.MseError).reason).toBe("Sync")
  })

  it("refuses a public key that is not a DH key, and a PadC over 512 bytes", () => {
    const zero = new Mse.Responder({ infoHashes: () => [infoHash], send: () => {} })
    expect((zero.feed(new Uint8Array(Mse.KEY_LENGTH)) as Mse.MseError).reason).toBe("Key")

    // Step 3 written by hand, from the spec, with len(PadC) = 513.
    const sent: Array<Uint8Array> = []
    const responder = new Mse.Responder({ infoHashes: () => [infoHash], send: (b) => sent.push(b) })
    const keys = new Mse.KeyPair()
    expect(responder.feed(keys.publicKey)).toBeUndefined()
    const secret = keys.secret(sent[0]!.subarray(0, Mse.KEY_LENGTH))!
    const req2 = sha1("req2", infoHash)
    const req3 = sha1("req3", secret)
    for (let k = 0; k < 20; k++) req2[k]! ^= req3[k]!
    const block = Buffer.alloc(8 + 4 + 2)
    block.writeUInt32BE(Mse.CRYPTO_PLAINTEXT, 8)
    block.writeUInt16BE(513, 12)
    const rc4 = new Rc4(sha1("keyA", secret, infoHash))
    rc4.discard(1024)
    rc4.process(block)
    const step = responder.feed(Buffer.concat([sha1("req1", secret), req2, block]))
    expect((step as Mse.MseError).reason).toBe("Padding")
  })
})

/** A connected pair of sockets on 127.0.0.1, closed with the scope. */
const socketPair = Effect.acquireRelease(
  Effect.async<{ client: Net.Socket; server: Net.Socket; close: () => void }>((resume) => {
    const listener = Net.createServer((server) => {
      resume(Effect.succeed({ client, server, close: () => listener.close() }))
    })
    let client: Net.Socket
    listener.listen(0, "127.0.0.1", () => {
      client = Net.connect((listener.address() as Net.AddressInfo).port, "127.0.0.1")
    })
  }),
  ({ client, server, close }) =>
    Effect.sync(() => {
      client.destroy()
      server.destroy()
      close()
    })
)

const collect = (socket: Net.Socket, n: number) =>
  Effect.async<Buffer>((resume) => {
    const parts: Array<Buffer> = []
    let got = 0
    const onData = (c: Buffer) => {
      parts.push(c)
      got += c.length
      if (got >= n) {
        socket.off("data", onData)
        resume(Effect.succeed(Buffer.concat(parts)))
      }
    }
    socket.on("data", onData)
  })

describe("MSE on sockets", () => {
  it.live(
    "the responder on a socket: RC4 selected, megabytes either way arrive intact through the transforms",
    () =>
      Effect.gen(function* () {
        const { client, server } = yield* socketPair
        const ia = btHandshake(infoHash)
        const initiator = new Mse.Initiator({
          infoHash,
          provide: Mse.CRYPTO_RC4,
          initialPayload: ia,
          send: (b) => client.write(b)
        })
        const stream = Effect.async<Buffer>((resume) =>
          MseSocket.respond(
            server,
            new Uint8Array(0),
            () => [infoHash],
            (rest) => resume(Effect.succeed(rest))
          )
        )
        const done = Effect.async<Mse.MseResult, Mse.MseError>((resume) => {
          client.on("data", (c) => {
            const step = initiator.feed(c)
            if (step instanceof Mse.MseError) resume(Effect.fail(step))
            else if (step !== undefined) resume(Effect.succeed(step))
          })
        })
        initiator.start()
        const [rest, result] = yield* Effect.all([stream, done], { concurrency: 2 }).pipe(
          Effect.timeout("10 seconds")
        )
        expect(hex(rest)).toBe(hex(ia))
        expect(result.method).toBe("rc4")
        client.removeAllListeners("data")
        MseSocket.encryptWrites(client, result.encrypt)
        MseSocket.decryptReads(client, result.decrypt)
        const up = NCrypto.randomBytes(3 * 1024 * 1024 + 17)
        const down = NCrypto.randomBytes(2 * 1024 * 1024 + 5)
        const gotUp = collect(server, up.length)
        const gotDown = collect(client, down.length)
        // In several writes, so the keystream crosses write boundaries.
        for (let at = 0; at < up.length; at += 100_003) client.write(up.subarray(at, at + 100_003))
        server.write(down)
        const [u, d] = yield* Effect.all([gotUp, gotDown], { concurrency: 2 }).pipe(
          Effect.timeout("20 seconds")
        )
        expect(u.equals(up)).toBe(true)
        expect(d.equals(down)).toBe(true)
      }).pipe(Effect.scoped),
    30_000
  )

  it.live(
    "a peer that sends a key and then nothing is closed at the deadline, having cost one reply",
    () =>
      Effect.gen(function* () {
        const { client, server } = yield* socketPair
        let received = 0
        client.on("data", (c: Buffer) => (received += c.length))
        // The client sees the close after every byte the server sent before it.
        const closed = Effect.async<void>((resume) => {
          client.once("close", () => resume(Effect.void))
        })
        const started = Date.now()
        MseSocket.respond(
          server,
          new Mse.KeyPair().publicKey,
          () => [infoHash],
          () => {},
          300
        )
        yield* closed.pipe(Effect.timeout("10 seconds"))
        expect(Date.now() - started).toBeGreaterThanOrEqual(250)
        // Yb and at most 512 bytes of PadB.
        expect(received).toBeGreaterThanOrEqual(Mse.KEY_LENGTH)
        expect(received).toBeLessThanOrEqual(Mse.KEY_LENGTH + Mse.MAX_PAD)
      }).pipe(Effect.scoped),
    20_000
  )
})
