// The hashing both hashers run: the worker (hashWorker.mjs) and the inline one (Hasher.ts). Plain
// JS so a worker can load it under Node 20, which cannot load .ts.
import { createHash } from "node:crypto"
import { closeSync, openSync, readSync } from "node:fs"

/** Digests of consecutive `pieceLength` runs of `view` (the last may be short), back to back. */
export const digestPieces = (view, pieceLength, algorithm) => {
  const size = algorithm === "sha256" ? 32 : 20
  const count = Math.ceil(view.length / pieceLength)
  const digests = new Uint8Array(count * size)
  for (let i = 0; i < count; i++) {
    const h = createHash(algorithm)
    h.update(view.subarray(i * pieceLength, Math.min(view.length, (i + 1) * pieceLength)))
    digests.set(h.digest(), i * size)
  }
  return digests
}

/**
 * BEP 52 leaf hashes: SHA-256 of each `blockSize` run of the data, across calls. A leaf cut by the
 * end of a call is carried in its hash state (never as views of the caller's buffers, which may
 * go back to a pool), and finished by the next call or by `final`.
 */
export const leafHasher = (blockSize) => {
  let hash
  let filled = 0
  return (views, final) => {
    const leaves = []
    for (const view of views) {
      let at = 0
      while (at < view.length) {
        const n = Math.min(blockSize - filled, view.length - at)
        hash ??= createHash("sha256")
        hash.update(view.subarray(at, at + n))
        filled += n
        at += n
        if (filled === blockSize) {
          leaves.push(new Uint8Array(hash.digest()))
          hash = undefined
          filled = 0
        }
      }
    }
    if (final && filled > 0) {
      leaves.push(new Uint8Array(hash.digest()))
      hash = undefined
      filled = 0
    }
    return leaves
  }
}

/**
 * Reads the file ranges, in order, back to back into `into` (positional reads; one descriptor per
 * run of ranges of the same file). Returns `undefined`, or the error and the path it came from; a
 * file shorter than its range is an error with code "CHANGED".
 */
export const readRanges = (ranges, into) => {
  let fd
  let fdPath
  let path
  let filled = 0
  try {
    for (const range of ranges) {
      path = range.path
      if (fdPath !== range.path) {
        if (fd !== undefined) closeSync(fd)
        fd = undefined
        fd = openSync(range.path, "r")
        fdPath = range.path
      }
      let done = 0
      while (done < range.length) {
        const n = readSync(fd, into, filled, range.length - done, range.position + done)
        if (n === 0) {
          const error = new Error("the file shrank while it was being hashed")
          error.code = "CHANGED"
          throw error
        }
        done += n
        filled += n
      }
    }
    return undefined
  } catch (error) {
    return { error, path }
  } finally {
    if (fd !== undefined) closeSync(fd)
  }
}
