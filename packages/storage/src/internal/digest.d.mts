/** Types of `digest.mjs` (plain JS, shared with the hashing worker). */
export declare const digestPieces: (
  view: Uint8Array,
  pieceLength: number,
  algorithm: "sha1" | "sha256"
) => Uint8Array

export declare const leafHasher: (
  blockSize: number
) => (views: ReadonlyArray<Uint8Array>, final: boolean) => Array<Uint8Array>

export declare const readRanges: (
  ranges: ReadonlyArray<{ readonly path: string; readonly position: number; readonly length: number }>,
  into: Uint8Array
) => { readonly error: unknown; readonly path: string | undefined } | undefined
