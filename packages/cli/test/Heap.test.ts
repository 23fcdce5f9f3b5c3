/** The CLI's cap on V8's young generation (src/internal/heap.ts), each case in a process of its own. */
import * as NChild from "node:child_process"
import * as NPath from "node:path"
import { assert, describe, it } from "@effect/vitest"

const fixture = NPath.resolve(import.meta.dirname, "fixtures/youngGeneration.ts")
const MiB = 1024 * 1024

const largestSemiSpace = (capMiB: number): number => {
  const out = NChild.execFileSync(process.execPath, ["--import", "tsx", fixture, String(capMiB)], {
    encoding: "utf8"
  })
  return (JSON.parse(out) as { largest: number }).largest
}

describe("Heap.capSemiSpace", () => {
  it("holds the semi-space at the cap while objects keep surviving scavenges", () => {
    // Without a cap the same churn doubles it past 8 MiB (V8's limit here is 16), so the cap is
    // what holds it.
    assert.isAbove(largestSemiSpace(0), 8 * MiB)
    assert.isAtMost(largestSemiSpace(2), 2 * MiB)
  }, 60_000)
})
