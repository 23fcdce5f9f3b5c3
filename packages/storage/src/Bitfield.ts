/**
 * A have-bitfield as BitTorrent sends it: piece 0 is the high bit of byte 0; spare bits are 0.
 *
 * @since 0.1.0
 */

/**
 * @since 0.1.0
 * @category models
 */
export interface Bitfield {
  readonly length: number
  readonly bytes: Uint8Array
}

/**
 * @since 0.1.0
 * @category constructors
 */
export const make = (length: number): Bitfield => ({ length, bytes: new Uint8Array(Math.ceil(length / 8)) })

/**
 * @since 0.1.0
 * @category getters
 */
export const has = (bitfield: Bitfield, index: number): boolean =>
  index >= 0 && index < bitfield.length && (bitfield.bytes[index >> 3]! & (0x80 >> (index & 7))) !== 0

/**
 * @since 0.1.0
 * @category mutations
 */
export const set = (bitfield: Bitfield, index: number, value = true): void => {
  if (index < 0 || index >= bitfield.length) return
  if (value) bitfield.bytes[index >> 3]! |= 0x80 >> (index & 7)
  else bitfield.bytes[index >> 3]! &= ~(0x80 >> (index & 7))
}

/**
 * @since 0.1.0
 * @category getters
 */
export const count = (bitfield: Bitfield): number => {
  let n = 0
  for (let i = 0; i < bitfield.length; i++) if (has(bitfield, i)) n++
  return n
}

/**
 * @since 0.1.0
 * @category getters
 */
export const isComplete = (bitfield: Bitfield): boolean => count(bitfield) === bitfield.length

/**
 * Sets every piece; the spare bits of the last byte stay 0.
 *
 * @since 0.1.0
 * @category mutations
 */
export const setAll = (bitfield: Bitfield): void => {
  bitfield.bytes.fill(0xff)
  clearSpare(bitfield)
}

/**
 * Copies `bytes` (a bitfield as a peer sent it, or `have` from a check) into `bitfield`: as many
 * bytes as it holds, the rest 0, spare bits cleared so they never count as pieces.
 *
 * @since 0.1.0
 * @category mutations
 */
export const assign = (bitfield: Bitfield, bytes: Uint8Array): void => {
  const n = Math.min(bytes.length, bitfield.bytes.length)
  bitfield.bytes.set(bytes.subarray(0, n))
  bitfield.bytes.fill(0, n)
  clearSpare(bitfield)
}

const clearSpare = (bitfield: Bitfield): void => {
  const spare = bitfield.bytes.length * 8 - bitfield.length
  if (spare > 0) bitfield.bytes[bitfield.bytes.length - 1]! &= (0xff << spare) & 0xff
}
