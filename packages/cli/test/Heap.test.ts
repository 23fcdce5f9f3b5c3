/** The CLI's caps on V8's young and old generations (src/internal/heap.ts), each case in a process of its own. */
import * as NChild from "node:child_process"
import * as NPath from "node:path"
import { assert, describe, it } from "@effect/vitest"

const fixture = NPath.resolve(import.meta.dirname, "fixtures/youngGeneration.ts")
const oldFixture = NPath.resolve(import.meta.dirname, "fixtures/oldGeneration.ts")
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

const oldGeneration = (slackMiB: number): { live: number; largest: number } =>
  JSON.parse(
    NChild.execFileSync(process.execPath, ["--import", "tsx", oldFixture, String(slackMiB)], {
      encoding: "utf8"
    })
  ) as { live: number; largest: number }

describe("Heap.boundOldSpace", () => {
  it("collects the warm old space once it holds its live size plus the slack", () => {
    const free = oldGeneration(0)
    const bounded = oldGeneration(2)
    // The bound: live + max(slack, live / 4); a turn's promotions may pass it before the check.
    assert.isAtMost(bounded.largest, bounded.live * 1.25 + 2 * MiB + 4 * MiB)
    // Without it V8 let the same garbage pile up to several times the live size.
    assert.isAbove(free.largest, 2 * bounded.largest)
  }, 60_000)
})

const fragmentedFixture = NPath.resolve(import.meta.dirname, "fixtures/fragmentedOldSpace.ts")

const fragmented = (compact: boolean): { live: number; committed: number } =>
  JSON.parse(
    NChild.execFileSync(process.execPath, ["--import", "tsx", fragmentedFixture, compact ? "1" : "0"], {
      encoding: "utf8"
    })
  ) as { live: number; committed: number }

describe("Heap.collectOldSpace", () => {
  it("frees the old space's half-empty pages", () => {
    const kept = fragmented(false)
    const compacted = fragmented(true)
    // By V8's default heuristics the half-free pages stay committed (~35 MiB for ~21 used here);
    // compacting for memory moves their survivors and frees them (~24 MiB).
    assert.isAbove(kept.committed - compacted.committed, 6 * MiB)
    assert.isBelow(compacted.committed, compacted.live + 6 * MiB)
  }, 60_000)
})
