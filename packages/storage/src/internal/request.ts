/**
 * A request's way from (piece, offset, buffers) to file spans: checked against the layout, mapped
 * onto spans, the buffers split between them without copying.
 *
 * @internal
 */
import * as Effect from "effect/Effect"
import * as Layout from "../Layout.js"
import { StorageError } from "../StorageError.js"

/** What a target does with one span of a request. */
type PerSpan = (span: Layout.Span, buffers: ReadonlyArray<Uint8Array>) => Effect.Effect<void, StorageError>

const outOfRange = (layout: Layout.Layout, piece: number, offset: number, length: number, location: string) =>
  new StorageError({
    reason: "OutOfRange",
    operation: "read",
    path: location,
    piece,
    offset,
    detail: `${length} byte(s) at offset ${offset} of piece ${piece} (the torrent has ${layout.pieceCount} pieces of ${layout.pieceLength} bytes)`
  })

const totalLength = (buffers: ReadonlyArray<Uint8Array>) => {
  let n = 0
  for (const buffer of buffers) n += buffer.length
  return n
}

/** Splits `buffers` into consecutive groups of the spans' lengths (views, no copies). */
const splitBuffers = (buffers: ReadonlyArray<Uint8Array>, spans: ReadonlyArray<Layout.Span>) => {
  const groups: Array<Array<Uint8Array>> = []
  let index = 0
  let consumed = 0 // of buffers[index]
  for (const span of spans) {
    const group: Array<Uint8Array> = []
    let need = span.length
    while (need > 0) {
      const buffer = buffers[index]!
      const n = Math.min(need, buffer.length - consumed)
      group.push(consumed === 0 && n === buffer.length ? buffer : buffer.subarray(consumed, consumed + n))
      need -= n
      consumed += n
      if (consumed === buffer.length) {
        index++
        consumed = 0
      }
    }
    groups.push(group)
  }
  return groups
}

/** Validates a request and runs `perSpan` on each file span it covers, in order. */
export const mapRequest = (
  layout: Layout.Layout,
  location: string,
  kind: "read" | "write",
  piece: number,
  offset: number,
  buffers: ReadonlyArray<Uint8Array>,
  perSpan: PerSpan
): Effect.Effect<void, StorageError> => {
  const length = totalLength(buffers)
  if (
    !Number.isInteger(piece) ||
    piece < 0 ||
    piece >= layout.pieceCount ||
    !Number.isInteger(offset) ||
    offset < 0 ||
    offset + length > Layout.pieceSize(layout, piece)
  ) {
    const error = outOfRange(layout, piece, offset, length, location)
    return Effect.fail(kind === "read" ? error : new StorageError({ ...error, operation: "write" }))
  }
  const spans = Layout.spans(layout, piece * layout.pieceLength + offset, length)!
  if (spans.length === 0) return Effect.void
  if (spans.length === 1) return perSpan(spans[0]!, buffers)
  const groups = splitBuffers(buffers, spans)
  return Effect.forEach(spans, (span, i) => perSpan(span, groups[i]!), { discard: true })
}

/**
 * A target's `read` and `write`: every storage kind checks and maps requests the same way and
 * differs only in what it does with a span.
 *
 * @internal
 */
export const readWrite = (
  layout: Layout.Layout,
  location: string,
  perSpan: (kind: "read" | "write", piece: number) => PerSpan
) => ({
  read: (piece: number, offset: number, buffers: ReadonlyArray<Uint8Array>) =>
    mapRequest(layout, location, "read", piece, offset, buffers, perSpan("read", piece)),
  write: (piece: number, offset: number, buffers: ReadonlyArray<Uint8Array>) =>
    mapRequest(layout, location, "write", piece, offset, buffers, perSpan("write", piece))
})
