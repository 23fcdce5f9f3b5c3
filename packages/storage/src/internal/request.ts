/**
 * A request's way from (piece, offset, buffers) to file spans: checked against the layout, mapped
 * onto spans, the buffers split between them without copying.
 *
 * @internal
 */
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
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

/** The spans a request covers, or the error that refuses it. */
const spansOf = (
  layout: Layout.Layout,
  location: string,
  kind: "read" | "write",
  piece: number,
  offset: number,
  buffers: ReadonlyArray<Uint8Array>
): ReadonlyArray<Layout.Span> | StorageError => {
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
    return kind === "read" ? error : new StorageError({ ...error, operation: "write" })
  }
  return Layout.spans(layout, piece * layout.pieceLength + offset, length)!
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
  const spans = spansOf(layout, location, kind, piece, offset, buffers)
  if (spans instanceof StorageError) return Effect.fail(spans)
  if (spans.length === 0) return Effect.void
  if (spans.length === 1) return perSpan(spans[0]!, buffers)
  const groups = splitBuffers(buffers, spans)
  return Effect.forEach(spans, (span, i) => perSpan(span, groups[i]!), { discard: true })
}

/**
 * A write of one span in plain callback code, if the target can do it now (an open file):
 * returns false, without calling `done`, when it cannot.
 */
export type FastWrite = (
  piece: number,
  span: Layout.Span,
  buffers: ReadonlyArray<Uint8Array>,
  done: (error: StorageError | undefined) => void
) => boolean

/**
 * A target's `read` and `write`: every storage kind checks and maps requests the same way and
 * differs only in what it does with a span. With `fastWrite`, `write.unsafe` is the same write
 * for callback code: a request within one span that `fastWrite` takes runs with no fiber; any
 * other runs `write` in a fiber of its own.
 *
 * @internal
 */
export const readWrite = (
  layout: Layout.Layout,
  location: string,
  perSpan: (kind: "read" | "write", piece: number) => PerSpan,
  fastWrite?: FastWrite
) => {
  const read = (piece: number, offset: number, buffers: ReadonlyArray<Uint8Array>) =>
    mapRequest(layout, location, "read", piece, offset, buffers, perSpan("read", piece))
  const write = (piece: number, offset: number, buffers: ReadonlyArray<Uint8Array>) =>
    mapRequest(layout, location, "write", piece, offset, buffers, perSpan("write", piece))
  if (fastWrite === undefined) return { read, write }
  const unsafe = (
    piece: number,
    offset: number,
    buffers: ReadonlyArray<Uint8Array>,
    done: (exit: Exit.Exit<void, StorageError>) => void
  ): void => {
    const spans = spansOf(layout, location, "write", piece, offset, buffers)
    if (
      !(spans instanceof StorageError) &&
      spans.length === 1 &&
      fastWrite(piece, spans[0]!, buffers, (error) =>
        done(error === undefined ? Exit.void : Exit.fail(error))
      )
    )
      return
    Effect.runCallback(write(piece, offset, buffers), { onExit: done })
  }
  return { read, write: Object.assign(write, { unsafe }) }
}
