/**
 * RC4, the stream cipher of MSE/PE (mse.ts). Node 20's OpenSSL 3 has no "rc4" cipher (it sits in
 * the legacy provider), so this is plain JS: one key schedule, then a keystream XORed into bytes.
 */

/** An RC4 keystream: `process` XORs the next bytes of it into a buffer. */
export class Rc4 {
  private readonly s = new Uint8Array(256)
  private i = 0
  private j = 0

  constructor(key: Uint8Array) {
    const s = this.s
    for (let k = 0; k < 256; k++) s[k] = k
    let j = 0
    for (let k = 0; k < 256; k++) {
      const t = s[k]!
      j = (j + t + key[k % key.length]!) & 0xff
      s[k] = s[j]!
      s[j] = t
    }
  }

  /**
   * XORs the keystream into `input[start, end)`, writing to `output` at `start` (the same buffer
   * by default: in place). Advances the keystream by `end - start` bytes.
   */
  process(input: Uint8Array, output: Uint8Array = input, start = 0, end = input.length): void {
    const s = this.s
    let i = this.i
    let j = this.j
    for (let k = start; k < end; k++) {
      i = (i + 1) & 0xff
      const si = s[i]!
      j = (j + si) & 0xff
      const sj = s[j]!
      s[i] = sj
      s[j] = si
      output[k] = input[k]! ^ s[(si + sj) & 0xff]!
    }
    this.i = i
    this.j = j
  }

  /** Skips `n` bytes of keystream (MSE drops the first 1024). */
  discard(n: number): void {
    this.process(new Uint8Array(n))
  }
}
