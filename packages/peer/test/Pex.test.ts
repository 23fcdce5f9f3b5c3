import * as ChildProcess from "node:child_process"
import { assert, describe, it } from "@effect/vitest"
import { hasLibtorrent, PYTHON } from "@ezio/test-support/clients"
import { Either } from "effect"
import * as Pex from "../src/internal/pex.js"

const v4a: Pex.PexPeer = { ip: "127.0.0.1", port: 6881, flags: Pex.Flags.reachable }
const v4b: Pex.PexPeer = { ip: "10.0.0.2", port: 6882, flags: Pex.Flags.seed }
const v6: Pex.PexPeer = { ip: "::1", port: 8080, flags: Pex.Flags.reachable | Pex.Flags.seed }

/**
 * What libtorrent 2.0's ut_pex sends (its `send_ut_peer_diff` fills every key, empty ones as
 * empty strings), bencoded by python3-libtorrent's `lt.bencode` from
 * {added: 127.0.0.1:6881 10.0.0.2:6882, added.f: 0x10 0x02, dropped: 192.168.1.9:80,
 *  added6: [::1]:8080, added6.f: 0x12, dropped6: ""}.
 */
const fromLibtorrent = Buffer.from(
  "64353a616464656431323a7f0000011ae10a0000021ae2373a61646465642e66323a1002363a61646465643631383a" +
    "000000000000000000000000000000011f90383a6164646564362e66313a12373a64726f70706564363ac0a80109" +
    "0050383a64726f7070656436303a65",
  "hex"
)

describe("PEX (BEP 11)", () => {
  it("round-trips added peers with their flags and dropped peers, IPv4 and IPv6", () => {
    const message = {
      added: [v4a, v4b, v6],
      dropped: [
        { ip: "192.168.1.9", port: 80 },
        { ip: "fe80::2", port: 1 }
      ]
    }
    const decoded = Either.getOrThrow(Pex.decode(Pex.encode(message)))
    assert.deepStrictEqual(decoded, message)
  })

  it("decodes the message libtorrent sends", () => {
    const decoded = Either.getOrThrow(Pex.decode(fromLibtorrent))
    assert.deepStrictEqual(decoded, {
      added: [
        { ip: "127.0.0.1", port: 6881, flags: 0x10 },
        { ip: "10.0.0.2", port: 6882, flags: 0x02 },
        { ip: "::1", port: 8080, flags: 0x12 }
      ],
      dropped: [{ ip: "192.168.1.9", port: 80 }]
    })
  })

  it("is lenient about missing flags and keys, strict about the bencoding", () => {
    const noFlags = Buffer.from("d5:added6:\x7f\x00\x00\x01\x1a\xe1e", "latin1")
    assert.deepStrictEqual(Either.getOrThrow(Pex.decode(noFlags)), {
      added: [{ ip: "127.0.0.1", port: 6881, flags: 0 }],
      dropped: []
    })
    assert.deepStrictEqual(Either.getOrThrow(Pex.decode(Buffer.from("de"))), { added: [], dropped: [] })
    const bad = Pex.decode(Buffer.from("d5:added"))
    assert.isTrue(Either.isLeft(bad))
    assert.isTrue(Either.isLeft(Pex.decode(Buffer.from("le"))))
  })

  it.skipIf(!hasLibtorrent)(
    "what we send, libtorrent's bdecode reads as BEP 11's keys and compact peers",
    () => {
      const ours = Pex.encode({ added: [v4a, v4b, v6], dropped: [{ ip: "192.168.1.9", port: 80 }] })
      const script = [
        "import sys, json, libtorrent as lt",
        "d = lt.bdecode(bytes.fromhex(sys.argv[1]))",
        "print(json.dumps({k.decode(): v.hex() for k, v in d.items()}))"
      ].join("\n")
      const out = ChildProcess.execFileSync(PYTHON, ["-c", script, Buffer.from(ours).toString("hex")], {
        encoding: "utf8"
      })
      assert.deepStrictEqual(JSON.parse(out), {
        added: "7f0000011ae10a0000021ae2",
        "added.f": "1002",
        added6: "000000000000000000000000000000011f90",
        "added6.f": "12",
        dropped: "c0a801090050"
      })
    }
  )

  it("sends the first diff soon after the handshake, then at most one a minute, without the recipient", () => {
    const sender = new Pex.PexSender(3, 0)
    const current = new Map<string, Pex.PexPeer>([
      ["127.0.0.1:6881", v4a],
      ["10.0.0.2:6882", v4b]
    ])
    assert.strictEqual(sender.poll(Pex.FIRST_DELAY_MS - 1, current), undefined)
    const first = sender.poll(Pex.FIRST_DELAY_MS, current, "10.0.0.2:6882")!
    assert.deepStrictEqual(Either.getOrThrow(Pex.decode(first)), { added: [v4a], dropped: [] })
    // Within the minute nothing goes out, whatever changed.
    current.delete("127.0.0.1:6881")
    current.set("[::1]:8080", v6)
    assert.strictEqual(
      sender.poll(Pex.FIRST_DELAY_MS + Pex.INTERVAL_MS - 1, current, "10.0.0.2:6882"),
      undefined
    )
    const second = sender.poll(Pex.FIRST_DELAY_MS + Pex.INTERVAL_MS, current, "10.0.0.2:6882")!
    assert.deepStrictEqual(Either.getOrThrow(Pex.decode(second)), {
      added: [v6],
      dropped: [{ ip: "127.0.0.1", port: 6881 }]
    })
    // Nothing changed: nothing sent, and the minute does not restart.
    assert.strictEqual(sender.poll(10 * Pex.INTERVAL_MS, current, "10.0.0.2:6882"), undefined)
  })

  it("puts at most 50 peers in `added`, the rest in the next message", () => {
    const sender = new Pex.PexSender(3, 0)
    const current = new Map(
      Array.from({ length: 70 }, (_, i) => [`10.0.1.${i}:6881`, { ip: `10.0.1.${i}`, port: 6881, flags: 0 }])
    )
    const first = Either.getOrThrow(Pex.decode(sender.poll(Pex.FIRST_DELAY_MS, current)!))
    assert.strictEqual(first.added.length, Pex.MAX_PER_MESSAGE)
    const second = Either.getOrThrow(Pex.decode(sender.poll(Pex.FIRST_DELAY_MS + Pex.INTERVAL_MS, current)!))
    assert.strictEqual(second.added.length, 20)
    assert.strictEqual(new Set([...first.added, ...second.added].map((p) => p.ip)).size, 70)
  })
})
