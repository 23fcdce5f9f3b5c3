import { assert, describe, it } from "@effect/vitest"
import { FastCheck } from "effect"
import * as Admission from "../src/internal/admission.js"

const options: Admission.Options = { graceMs: 5_000, idleMs: 60_000, silentMs: 1_000 }

const peer = (p: Partial<Admission.Peer> & { name?: string } = {}) => ({
  name: p.name ?? "",
  amInterested: p.amInterested ?? false,
  peerInterested: p.peerInterested ?? false,
  connectedAt: p.connectedAt ?? 0,
  lastPayload: p.lastPayload ?? p.connectedAt ?? 0
})

describe("Admission", () => {
  it("a new peer is never idle during its grace period", () => {
    assert.isFalse(Admission.isIdle(peer({ connectedAt: 1_000 }), 5_999, options))
    assert.isTrue(Admission.isIdle(peer({ connectedAt: 1_000 }), 6_000, options))
  })

  it("a handshaken peer that has said nothing since is idle after silentMs, within its grace", () => {
    const silent = { ...peer({ connectedAt: 1_000 }), silent: true }
    assert.isFalse(Admission.isIdle(silent, 1_999, options))
    assert.isTrue(Admission.isIdle(silent, 2_000, options), "every client says what it has at once")
    assert.isFalse(
      Admission.isIdle({ ...silent, silent: false }, 2_000, options),
      "one that spoke keeps its grace"
    )
    assert.isFalse(Admission.isIdle({ ...silent, amInterested: true }, 2_000, options))
    const peers = [
      { ...peer({ name: "fresh", connectedAt: 1_500 }), silent: false },
      { ...silent, name: "silent" }
    ]
    assert.strictEqual(Admission.victim(peers, 2_000, options)?.name, "silent")
  })

  it("idle: neither side interested, or no payload either way for idleMs", () => {
    const now = 100_000
    assert.isTrue(Admission.isIdle(peer(), now, options))
    assert.isFalse(Admission.isIdle(peer({ peerInterested: true, lastPayload: 90_000 }), now, options))
    assert.isFalse(Admission.isIdle(peer({ amInterested: true, lastPayload: 90_000 }), now, options))
    assert.isTrue(Admission.isIdle(peer({ peerInterested: true, lastPayload: 40_000 }), now, options))
  })

  it("evicts the idle peer with the oldest payload, never one trading blocks; none if nobody is idle", () => {
    const now = 100_000
    const peers = [
      peer({ name: "trading", peerInterested: true, lastPayload: 99_000 }),
      peer({ name: "idle-recent", lastPayload: 80_000 }),
      peer({ name: "idle-oldest", connectedAt: 10_000 }),
      peer({ name: "fresh", connectedAt: 99_000 })
    ]
    assert.strictEqual(Admission.victim(peers, now, options)?.name, "idle-oldest")
    assert.isUndefined(Admission.victim([peers[0]!, peers[3]!], now, options))
    assert.isUndefined(Admission.victim([], now, options))
  })

  it.prop(
    "the victim is idle and no idle peer has older payload",
    {
      peers: FastCheck.array(
        FastCheck.record({
          amInterested: FastCheck.boolean(),
          peerInterested: FastCheck.boolean(),
          connectedAt: FastCheck.integer({ min: 0, max: 100_000 }),
          age: FastCheck.integer({ min: 0, max: 100_000 })
        }),
        { maxLength: 30 }
      )
    },
    ({ peers }) => {
      const now = 200_000
      const all = peers.map((p) => ({ ...p, lastPayload: Math.min(now, p.connectedAt + p.age) }))
      const v = Admission.victim(all, now, options)
      const idle = all.filter((p) => Admission.isIdle(p, now, options))
      if (v === undefined) return idle.length === 0
      return Admission.isIdle(v, now, options) && idle.every((p) => p.lastPayload >= v.lastPayload)
    }
  )
})
