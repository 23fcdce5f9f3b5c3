/** The CLI logger's coalescing: a repeated line is written once, then summed up with a count. */
import { assert, describe, it } from "@effect/vitest"
import { Coalescer } from "../src/internal/logger.js"

describe("Coalescer", () => {
  it("writes a line once per interval and then how many times it repeated", () => {
    let now = 0
    const out: Array<string> = []
    const c = new Coalescer(
      (line) => out.push(line),
      10_000,
      () => now
    )
    for (let i = 0; i < 9150; i++) c.line("ezio: warning: reading piece 3: EIO")
    c.line("ezio: warning: something else")
    assert.deepStrictEqual(out, ["ezio: warning: reading piece 3: EIO", "ezio: warning: something else"])
    now = 10_000
    c.flush()
    assert.deepStrictEqual(out.slice(2), ["ezio: warning: reading piece 3: EIO (repeated 9149 more times)"])
    // After the summary, the line is new again.
    c.line("ezio: warning: reading piece 3: EIO")
    assert.strictEqual(out.length, 4)
    c.line("ezio: warning: reading piece 3: EIO")
    c.flush(true)
    assert.strictEqual(out[4], "ezio: warning: reading piece 3: EIO (repeated 1 more time)")
  })
})
