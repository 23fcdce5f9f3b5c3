// Hashing worker: reads pool blocks in place (views over SharedArrayBuffer slabs arrive without a
// copy) and answers with digests. Plain JS because workers cannot load .ts under Node 20.
import { createHash } from "node:crypto"
import { closeSync, openSync, readSync } from "node:fs"
import { parentPort } from "node:worker_threads"

// Incremental jobs (pieces larger than one request) keep their hash state here between updates.
const open = new Map()

parentPort.on("message", (message) => {
  const { id, job, views, algorithm, final, blockHashes, blockSize, pieceLength, ranges } = message
  if (ranges !== undefined) {
    hashRanges(id, ranges, pieceLength, algorithm)
    return
  }
  if (pieceLength !== undefined) {
    // Consecutive whole pieces of one view (torrent creation): one message for many pieces.
    try {
      const view = views[0]
      const size = algorithm === "sha256" ? 32 : 20
      const count = Math.ceil(view.length / pieceLength)
      const digests = new Uint8Array(count * size)
      for (let i = 0; i < count; i++) {
        const h = createHash(algorithm)
        h.update(view.subarray(i * pieceLength, Math.min(view.length, (i + 1) * pieceLength)))
        digests.set(h.digest(), i * size)
      }
      parentPort.postMessage({ id, digest: digests })
    } catch (error) {
      parentPort.postMessage({ id, error: String(error && error.stack ? error.stack : error) })
    }
    return
  }
  try {
    let hash = open.get(job)
    if (hash === undefined) {
      hash = createHash(algorithm)
      open.set(job, hash)
    }
    let blocks
    if (blockHashes) {
      // v2: SHA-256 of each block-sized run of the data, alongside the piece hash.
      blocks = []
      let pending = []
      let pendingLength = 0
      const flush = () => {
        const h = createHash("sha256")
        for (const v of pending) h.update(v)
        blocks.push(new Uint8Array(h.digest()))
        pending = []
        pendingLength = 0
      }
      for (const view of views) {
        let at = 0
        while (at < view.length) {
          const n = Math.min(blockSize - pendingLength, view.length - at)
          pending.push(view.subarray(at, at + n))
          pendingLength += n
          at += n
          if (pendingLength === blockSize) flush()
        }
      }
      if (pendingLength > 0) flush()
    }
    for (const view of views) hash.update(view)
    if (final) {
      open.delete(job)
      parentPort.postMessage({ id, digest: new Uint8Array(hash.digest()), blocks })
    } else {
      parentPort.postMessage({ id, blocks })
    }
  } catch (error) {
    open.delete(job)
    parentPort.postMessage({ id, error: String(error && error.stack ? error.stack : error) })
  }
})

// Torrent creation: this worker reads the file ranges itself (positional reads into its own
// buffer) and hashes them in pieces, so reading and hashing both run on every core and nothing
// crosses threads but paths and digests.
let scratch = new Uint8Array(0)
const hashRanges = (id, ranges, pieceLength, algorithm) => {
  let fd
  let fdPath
  let at = { path: undefined }
  try {
    const total = ranges.reduce((sum, r) => sum + r.length, 0)
    if (scratch.length < total) scratch = new Uint8Array(total)
    let filled = 0
    for (const range of ranges) {
      at = range
      if (fdPath !== range.path) {
        if (fd !== undefined) closeSync(fd)
        fd = openSync(range.path, "r")
        fdPath = range.path
      }
      let done = 0
      while (done < range.length) {
        const n = readSync(fd, scratch, filled, range.length - done, range.position + done)
        if (n === 0) {
          const error = new Error("the file shrank while it was being hashed")
          error.code = "CHANGED"
          throw error
        }
        done += n
        filled += n
      }
    }
    const size = algorithm === "sha256" ? 32 : 20
    const count = Math.ceil(total / pieceLength)
    const digests = new Uint8Array(count * size)
    for (let i = 0; i < count; i++) {
      const h = createHash(algorithm)
      h.update(scratch.subarray(i * pieceLength, Math.min(total, (i + 1) * pieceLength)))
      digests.set(h.digest(), i * size)
    }
    parentPort.postMessage({ id, digest: digests })
  } catch (error) {
    parentPort.postMessage({
      id,
      error: String(error && error.message ? error.message : error),
      code: error && error.code,
      path: at.path
    })
  } finally {
    if (fd !== undefined) closeSync(fd)
  }
}
