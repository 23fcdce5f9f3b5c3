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
 * A read or write of one span in plain callback code, if the target can do it now (an open
 * file): returns false, without calling `done`, when it cannot.
 */
export type FastSpan = (
  kind: "read" | "write",
  piece: number,
  span: Layout.Span,
  buffers: ReadonlyArray<Uint8Array>,
  done: (error: StorageError | undefined) => void
) => boolean

/** A request as plain callback code: `done` gets its exit, maybe before this returns. */
type Unsafe = (
  piece: number,
  offset: number,
  buffers: ReadonlyArray<Uint8Array>,
  done: (exit: Exit.Exit<void, StorageError>) => void
) => void

/**
 * A storage read. File targets also carry `unsafe`, the same read for plain callback code (a
 * seeder's one call per run of requests, with no fiber): `done` gets its exit, maybe before
 * `unsafe` returns. A wrapper that replaces `read` drops `unsafe` with it.
 *
 * @since 0.1.0
 * @category models
 */
export interface Read {
  (piece: number, offset: number, buffers: ReadonlyArray<Uint8Array>): Effect.Effect<void, StorageError>
  readonly unsafe?: Unsafe
}

/**
 * A storage write. File targets also carry `unsafe`, the same write for plain callback code (a
 * hot path's one call per vectored write, with no fiber): `done` gets its exit, maybe before
 * `unsafe` returns. A wrapper that replaces `write` drops `unsafe` with it.
 *
 * @since 0.1.0
 * @category models
 */
export interface Write {
  (piece: number, offset: number, buffers: ReadonlyArray<Uint8Array>): Effect.Effect<void, StorageError>
  readonly unsafe?: Unsafe
}

/** `request` for callback code: through `fast` when it takes the one span, else in a fiber. */
const unsafeOf =
  (layout: Layout.Layout, location: string, kind: "read" | "write", request: Read, fast: FastSpan): Unsafe =>
  (piece, offset, buffers, done) => {
    const spans = spansOf(layout, location, kind, piece, offset, buffers)
    if (
      !(spans instanceof StorageError) &&
      spans.length === 1 &&
      fast(kind, piece, spans[0]!, buffers, (error) =>
        done(error === undefined ? Exit.void : Exit.fail(error))
      )
    )
      return
    Effect.runCallback(request(piece, offset, buffers), { onExit: done })
  }

/**
 * A target's `read` and `write`: every storage kind checks and maps requests the same way and
 * differs only in what it does with a span. With `fast`, `read.unsafe` and `write.unsafe` are the
 * same requests for callback code: a request within one span that `fast` takes runs with no
 * fiber; any other runs `read` or `write` in a fiber of its own.
 *
 * @internal
 */
export const readWrite = (
  layout: Layout.Layout,
  location: string,
  perSpan: (kind: "read" | "write", piece: number) => PerSpan,
  fast?: FastSpan
): { readonly read: Read; readonly write: Write } => {
  const read: Read = (piece, offset, buffers) =>
    mapRequest(layout, location, "read", piece, offset, buffers, perSpan("read", piece))
  const write: Write = (piece, offset, buffers) =>
    mapRequest(layout, location, "write", piece, offset, buffers, perSpan("write", piece))
  if (fast === undefined) return { read, write }
  return {
    read: Object.assign(read, { unsafe: unsafeOf(layout, location, "read", read, fast) }),
    write: Object.assign(write, { unsafe: unsafeOf(layout, location, "write", write, fast) })
  }
}
