import { assert, describe, it } from "@effect/vitest"
import { Effect, Option } from "effect"
import * as Finish from "../src/internal/finish.js"

const policy = { _tag: "WhenIdle", idleMs: 30_000, timeMs: undefined, ratio: undefined } as const
const progress = (p: Partial<Finish.Progress> = {}): Finish.Progress => ({
  peers: 2,
  seeds: 1,
  lastUploadAt: undefined,
  uploadedSince: 0,
  ...p
})

describe("when a completed target stops seeding", () => {
  it("seeds on while an incomplete peer was served within --seed-idle", () => {
    assert.isUndefined(Finish.reason(policy, progress({ lastUploadAt: 50_000 }), 0, 70_000, 1000))
    assert.match(
      Finish.reason(policy, progress({ lastUploadAt: 50_000 }), 0, 80_000, 1000)!,
      /no peer needed/
    )
  })

  it("counts idle time from completion when nobody was served", () => {
    assert.isUndefined(Finish.reason(policy, progress(), 10_000, 39_999, 1000))
    assert.isDefined(Finish.reason(policy, progress(), 10_000, 40_000, 1000))
  })

  it("stops at once when every connected peer is complete, not when it knows no peer", () => {
    assert.strictEqual(Finish.reason(policy, progress({ seeds: 2 }), 0, 1, 1000), "every peer is complete")
    assert.isUndefined(Finish.reason(policy, progress({ peers: 0, seeds: 0 }), 0, 1, 1000))
  })

  it("--seed-time and --seed-ratio end it sooner", () => {
    const timed = { ...policy, timeMs: 5_000 }
    assert.strictEqual(
      Finish.reason(timed, progress({ lastUploadAt: 4_999 }), 0, 5_000, 1000),
      "seed time reached"
    )
    const ratio = { ...policy, ratio: 3 }
    assert.isUndefined(Finish.reason(ratio, progress({ lastUploadAt: 1, uploadedSince: 2999 }), 0, 2, 1000))
    assert.strictEqual(
      Finish.reason(ratio, progress({ lastUploadAt: 1, uploadedSince: 3000 }), 0, 2, 1000),
      "seed ratio reached"
    )
  })

  it.effect("options: --exit and --seed exclude each other; the default waits for idle", () =>
    Effect.gen(function* () {
      const base = {
        exit: false,
        seed: false,
        seedIdle: 30,
        seedTime: Option.none(),
        seedRatio: Option.none()
      }
      assert.deepStrictEqual(yield* Finish.policyOf(base), policy)
      assert.deepStrictEqual(yield* Finish.policyOf({ ...base, exit: true }), { _tag: "Exit" })
      assert.deepStrictEqual(yield* Finish.policyOf({ ...base, seed: true }), { _tag: "Seed" })
      const both = yield* Effect.flip(Finish.policyOf({ ...base, exit: true, seed: true }))
      assert.strictEqual(both.option, "--exit")
      const idle = yield* Effect.flip(Finish.policyOf({ ...base, seedIdle: 0 }))
      assert.strictEqual(idle.option, "--seed-idle")
    })
  )
})
