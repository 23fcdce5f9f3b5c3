import { assert, describe, it } from "@effect/vitest"
import { Effect, FastCheck, SubscriptionRef } from "effect"
import * as Deploy from "../src/Deploy.js"
import * as EmbeddedTracker from "../src/EmbeddedTracker.js"
import * as Model from "../src/internal/deployModel.js"
import { toHex } from "../src/internal/urlCodec.js"
import * as Tracker from "../src/Tracker.js"
import { bytes20, eventually, request } from "./trackerSupport.js"

const A = "a".repeat(40)
const B = "b".repeat(40)
const sizes = new Map([
  [A, 1000],
  [B, 500]
])

const announce = (peerId: string, extra: Partial<Model.Announce> = {}): Model.Announce => ({
  infoHash: A,
  peerId,
  ip: "10.0.0.2",
  port: 6881,
  event: "none",
  left: 1000,
  uploaded: 0,
  downloaded: 0,
  name: undefined,
  at: 0,
  ...extra
})

describe("deploy model", () => {
  it("follows a target through downloading, seeding and done", () => {
    let m = Model.empty(new Map([[A, 1000]]), new Set())
    m = Model.apply(m, announce("t1", { event: "started", name: "pc-01" }))
    assert.strictEqual(m.targets.get("t1")!.state, "downloading")
    m = Model.apply(m, announce("t1", { left: 600, downloaded: 400, at: 2000 }))
    const t = m.targets.get("t1")!
    assert.strictEqual(t.have, 400)
    assert.strictEqual(t.downloadRate, 200)
    assert.strictEqual(t.name, "pc-01")
    m = Model.apply(
      m,
      announce("t1", { left: 0, downloaded: 1000, uploaded: 300, event: "completed", at: 4000 })
    )
    assert.strictEqual(m.targets.get("t1")!.state, "seeding")
    assert.strictEqual(m.targets.get("t1")!.completedAt, 4000)
    m = Model.apply(
      m,
      announce("t1", { left: 0, downloaded: 1000, uploaded: 900, event: "stopped", at: 9000 })
    )
    const done = m.targets.get("t1")!
    assert.strictEqual(done.state, "done")
    assert.strictEqual(done.uploaded, 900)
    assert.strictEqual(done.completedAt, 4000)
    assert.strictEqual(Model.totals(m).byState.done, 1)
  })

  it("is complete only once every torrent of the deploy has nothing left", () => {
    let m = Model.empty(sizes, new Set())
    m = Model.apply(m, announce("t1", { left: 0 }))
    assert.strictEqual(m.targets.get("t1")!.state, "downloading")
    assert.strictEqual(m.targets.get("t1")!.have, 1000)
    assert.strictEqual(m.targets.get("t1")!.size, 1500)
    m = Model.apply(m, announce("t1", { infoHash: B, left: 0 }))
    assert.strictEqual(m.targets.get("t1")!.state, "seeding")
  })

  it("ignores the seeder's own announces and other torrents", () => {
    let m = Model.empty(new Map([[A, 1000]]), new Set(["self"]))
    m = Model.apply(m, announce("self", { left: 0 }))
    m = Model.apply(m, announce("t1", { infoHash: "c".repeat(40) }))
    assert.strictEqual(m.targets.size, 0)
  })

  it("a stopped or silent target is gone, or done if it had everything", () => {
    let m = Model.empty(new Map([[A, 1000]]), new Set())
    m = Model.apply(m, announce("t1", { left: 500 }))
    m = Model.apply(m, announce("t2", { left: 0 }))
    m = Model.apply(m, announce("t3", { left: 500 }))
    m = Model.apply(m, announce("t3", { left: 500, event: "stopped", at: 100 }))
    assert.strictEqual(m.targets.get("t3")!.state, "gone")
    m = Model.expire(m, 10_000, 15_000)
    assert.strictEqual(m.targets.get("t1")!.state, "downloading")
    m = Model.expire(m, 20_000, 15_000)
    assert.strictEqual(m.targets.get("t1")!.state, "gone")
    assert.strictEqual(m.targets.get("t2")!.state, "done")
    assert.deepStrictEqual(Model.totals(m).byState, { downloading: 0, seeding: 0, done: 1, gone: 2 })
  })

  it.prop(
    "have never exceeds size, and done targets had every byte",
    {
      steps: FastCheck.array(
        FastCheck.record({
          peer: FastCheck.constantFrom("t1", "t2", "t3"),
          torrent: FastCheck.constantFrom(A, B),
          left: FastCheck.integer({ min: 0, max: 1000 }),
          event: FastCheck.constantFrom<Model.Announce["event"]>("started", "completed", "stopped", "none")
        }),
        { maxLength: 40 }
      )
    },
    ({ steps }) => {
      let m = Model.empty(sizes, new Set())
      steps.forEach((s, i) => {
        m = Model.apply(
          m,
          announce(s.peer, { infoHash: s.torrent, left: s.left, event: s.event, at: i * 1000 })
        )
      })
      m = Model.expire(m, 10 ** 9, 1000)
      for (const t of m.targets.values()) {
        if (t.have > t.size) return false
        if (t.state === "done" && t.have !== t.size) return false
        if (t.state === "downloading" || t.state === "seeding") return false
      }
      return true
    }
  )
})

describe("Deploy fed by the EmbeddedTracker", () => {
  it.scopedLive(
    "targets' announces, with their names, reach the snapshot",
    () =>
      Effect.gen(function* () {
        const infoHash = bytes20(1)
        const self = bytes20(9)
        const deploy = yield* Deploy.make({ torrents: [{ infoHash, size: 1000 }], exclude: [self] })
        const server = yield* EmbeddedTracker.make({ host: "127.0.0.1", port: 0, onAnnounce: deploy.record })
        const client = yield* Tracker.make({ httpTimeout: "5 seconds" })
        const named = `${server.url}?name=${encodeURIComponent("pc 01")}`
        yield* client.announce(server.url, request(self, infoHash, 6880, { left: 0, event: "started" }))
        yield* client.announce(named, request(bytes20(2), infoHash, 6881, { event: "started" }))
        yield* client.announce(server.url, request(bytes20(3), infoHash, 6882, { event: "started" }))
        yield* client.announce(
          named,
          request(bytes20(2), infoHash, 6881, { left: 0, downloaded: 1000, uploaded: 10, event: "completed" })
        )
        yield* client.announce(named, request(bytes20(2), infoHash, 6881, { left: 0, event: "stopped" }))
        let latest = yield* SubscriptionRef.get(deploy.snapshot)
        yield* eventually(() => {
          latest = Effect.runSync(SubscriptionRef.get(deploy.snapshot))
          return latest.targets.length === 2 && latest.totals.byState.done === 1
        }, "two targets, one done")
        const done = yield* deploy.awaitDone(1)
        assert.strictEqual(done.totals.total, 2)
        const first = done.targets.find((t) => t.peerId === toHex(bytes20(2)))!
        assert.strictEqual(first.name, "pc 01")
        assert.strictEqual(first.state, "done")
        assert.strictEqual(first.address, "127.0.0.1:6881")
        const second = done.targets.find((t) => t.peerId === toHex(bytes20(3)))!
        assert.strictEqual(second.state, "downloading")
        assert.strictEqual(second.name, undefined)
        const json = Deploy.toJson(done)
        assert.strictEqual(json.targets.find((t) => t.name === "pc 01")!.progress, 1)
      }),
    15_000
  )
})
