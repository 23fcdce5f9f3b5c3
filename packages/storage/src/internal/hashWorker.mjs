// Hashing worker: reads pool blocks in place (the SharedArrayBuffer slabs arrive once, then a
// request names its views by slab id, offset and length) and answers with digests. Plain JS
// because workers cannot load .ts under Node 20.
import { createHash } from "node:crypto"
import { parentPort } from "node:worker_threads"
import { digestPieces, leafHasher, readRanges } from "./digest.mjs"

// Incremental jobs (pieces larger than one request) keep their hash state here between updates.
const open = new Map()

const describe = (error) => String(error && error.stack ? error.stack : error)

// The shared buffers the main thread has sent, by id, as bytes.
const shared = new Map()

/** The views a request names: (id, offset, length) triples, a negative id an inline view. */
const viewsOf = (refs, inline) => {
  const views = new Array(refs.length / 3)
  for (let i = 0; i < views.length; i++) {
    const id = refs[i * 3]
    const offset = refs[i * 3 + 1]
    const length = refs[i * 3 + 2]
    if (id < 0) views[i] = inline[-1 - id]
    else {
      const bytes = shared.get(id)
      if (bytes === undefined) throw new Error(`shared buffer ${id} was never sent to this worker`)
      views[i] = bytes.subarray(offset, offset + length)
    }
  }
  return views
}

parentPort.on("message", (message) => {
  if (message.forget !== undefined) {
    shared.delete(message.forget)
    return
  }
  if (message.register !== undefined)
    for (const [sharedId, buffer] of message.register) shared.set(sharedId, new Uint8Array(buffer))
  const { id, job, algorithm, final, blockHashes, blockSize, pieceLength, ranges } = message
  if (ranges !== undefined) {
    hashRanges(id, ranges, pieceLength, algorithm)
    return
  }
  let views
  try {
    views = viewsOf(message.refs, message.inline)
  } catch (error) {
    open.delete(job)
    parentPort.postMessage({ id, error: describe(error) })
    return
  }
  if (pieceLength !== undefined) {
    // Consecutive whole pieces of one view (torrent creation): one message for many pieces.
    try {
      parentPort.postMessage({ id, digest: digestPieces(views[0], pieceLength, algorithm) })
    } catch (error) {
      parentPort.postMessage({ id, error: describe(error) })
    }
    return
  }
  try {
    let state = open.get(job)
    if (state === undefined) {
      state = { hash: createHash(algorithm), leaves: blockHashes ? leafHasher(blockSize) : undefined }
      open.set(job, state)
    }
    // v2: SHA-256 of each block-sized run of the data, alongside the piece hash.
    const blocks = state.leaves === undefined ? undefined : state.leaves(views, final)
    for (const view of views) state.hash.update(view)
    if (final) {
      open.delete(job)
      parentPort.postMessage({ id, digest: new Uint8Array(state.hash.digest()), blocks })
    } else {
      parentPort.postMessage({ id, blocks })
    }
  } catch (error) {
    open.delete(job)
    parentPort.postMessage({ id, error: describe(error) })
  }
})

// Torrent creation: this worker reads the file ranges itself (positional reads into its own
// buffer) and hashes them in pieces, so reading and hashing both run on every core and nothing
// crosses threads but paths and digests.
let scratch = new Uint8Array(0)
const hashRanges = (id, ranges, pieceLength, algorithm) => {
  const total = ranges.reduce((sum, r) => sum + r.length, 0)
  if (scratch.length < total) scratch = new Uint8Array(total)
  const failed = readRanges(ranges, scratch)
  if (failed !== undefined) {
    const { error, path } = failed
    parentPort.postMessage({
      id,
      error: String(error && error.message ? error.message : error),
      code: error && error.code,
      path
    })
    return
  }
  try {
    parentPort.postMessage({ id, digest: digestPieces(scratch.subarray(0, total), pieceLength, algorithm) })
  } catch (error) {
    parentPort.postMessage({ id, error: String(error && error.message ? error.message : error) })
  }
}

// Loaded: the main thread may restore what it changed for the start-up (Hasher's `workerStart`).
parentPort.postMessage({ id: -1 })
