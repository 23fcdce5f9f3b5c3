import { assert, describe, it } from "@effect/vitest"
import { Either, FastCheck } from "effect"
import { Size } from "../src/index.js"

const bytes = (text: string) => Either.getOrThrow(Size.parse(text))
const reason = (text: string) => Either.getOrThrow(Either.flip(Size.parse(text))).reason

describe("Size", () => {
  it("reads plain bytes", () => {
    assert.strictEqual(bytes("16384"), 16384)
    assert.strictEqual(bytes("0"), 0)
    assert.strictEqual(bytes("512B"), 512)
    assert.strictEqual(bytes(" 4096 "), 4096)
  })

  it("reads every unit as binary, in any case, with or without a space", () => {
    for (const [units, factor] of [
      [["k", "K", "kb", "KB", "KiB", "kib"], 1024],
      [["m", "M", "mb", "MB", "MiB"], 1024 ** 2],
      [["g", "G", "gb", "GB", "GiB"], 1024 ** 3],
      [["t", "T", "tb", "TB", "TiB"], 1024 ** 4]
    ] as const) {
      for (const unit of units) {
        assert.strictEqual(bytes(`3${unit}`), 3 * factor, unit)
        assert.strictEqual(bytes(`3 ${unit}`), 3 * factor, unit)
      }
    }
  })

  it("GB is GiB: 1GB is a whole number of 16 KiB blocks", () => {
    assert.strictEqual(bytes("1GB"), 2 ** 30)
    assert.strictEqual(bytes("1GB") % (16 * 1024), 0)
    assert.strictEqual(bytes("256MB"), bytes("256MiB"))
  })

  it("reads a fraction that comes to whole bytes", () => {
    assert.strictEqual(bytes("1.5KiB"), 1536)
    assert.strictEqual(bytes("0.5GiB"), 2 ** 29)
  })

  it("says why a text is not a size", () => {
    assert.strictEqual(reason("lots"), "is not a size")
    assert.strictEqual(reason(""), "is not a size")
    assert.strictEqual(reason("-1MiB"), "is not a size")
    assert.strictEqual(reason("1 2"), "is not a size")
    assert.strictEqual(reason("12xyz"), 'has an unknown unit "xyz"')
    assert.strictEqual(reason("1PiB"), 'has an unknown unit "PiB"')
    assert.strictEqual(reason("1.1KiB"), "is not a whole number of bytes")
    assert.strictEqual(reason("0.5"), "is not a whole number of bytes")
    assert.strictEqual(reason("99999999TiB"), "is too large")
  })

  it("names the text and gives examples in its message", () => {
    const error = Either.getOrThrow(Either.flip(Size.parse("12xyz")))
    assert.strictEqual(error._tag, "InvalidSize")
    assert.strictEqual(error.message, `"12xyz" has an unknown unit "xyz" (examples: ${Size.examples})`)
  })

  it("formats in the largest binary unit", () => {
    assert.strictEqual(Size.format(512), "512 B")
    assert.strictEqual(Size.format(1024), "1.0 KiB")
    assert.strictEqual(Size.format(1536), "1.5 KiB")
    assert.strictEqual(Size.format(16 * 1024 ** 2), "16.0 MiB")
    assert.strictEqual(Size.format(256 * 1024 ** 2), "256 MiB")
    assert.strictEqual(Size.format(1.5 * 1024 ** 3), "1.5 GiB")
    assert.strictEqual(Size.format(2 * 1024 ** 5), "2048 TiB")
  })

  it.prop(
    "parses what it formats, whenever the shown digits are exact",
    { n: FastCheck.integer({ min: 1, max: 1023 }), unit: FastCheck.integer({ min: 0, max: 4 }) },
    ({ n, unit }) => {
      const size = n * 1024 ** unit
      return bytes(Size.format(size)) === size
    }
  )
})
