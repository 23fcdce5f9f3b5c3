/**
 * The pool's typed errors (what a caller can act on) and defects (programming errors: a block
 * released twice or used after release, which must never turn into silent corruption).
 *
 * @since 0.1.0
 */
import * as Data from "effect/Data"

/**
 * An option given to the pool is out of range; says which one, the value, and why.
 *
 * @since 0.1.0
 * @category errors
 */
export class InvalidPoolOptions extends Data.TaggedError("InvalidPoolOptions")<{
  readonly option: string
  readonly value: unknown
  readonly reason: string
}> {
  override get message(): string {
    return `BufferPool option "${this.option}" = ${String(this.value)}: ${this.reason}`
  }
}

/**
 * A non-waiting acquisition found the pool at its hard limit, or asked for more blocks than the
 * hard limit could ever hold.
 *
 * @since 0.1.0
 * @category errors
 */
export class PoolExhausted extends Data.TaggedError("PoolExhausted")<{
  readonly pool: string
  readonly requested: number
  readonly inUse: number
  readonly hardLimit: number
}> {
  override get message(): string {
    return this.requested > this.hardLimit
      ? `BufferPool "${this.pool}": ${this.requested} blocks requested, more than the hard limit of ${this.hardLimit} could ever hold`
      : `BufferPool "${this.pool}": ${this.requested} blocks requested with ${this.inUse} of ${this.hardLimit} in use`
  }
}

/**
 * The pool's scope has closed: it hands out no more blocks, and waiters are failed with this.
 *
 * @since 0.1.0
 * @category errors
 */
export class PoolClosed extends Data.TaggedError("PoolClosed")<{
  readonly pool: string
  readonly method: string
}> {
  override get message(): string {
    return `BufferPool "${this.pool}".${this.method}: the pool has been closed`
  }
}

/**
 * Defect: a block was released twice, released into a pool it did not come from, or its bytes
 * were read after release. Raised as a defect (a thrown error or `Effect.die`), never a failure:
 * no caller can recover from a broken ownership invariant.
 *
 * @since 0.1.0
 * @category errors
 */
export class BlockOwnershipError extends Data.Error<{
  readonly pool: string
  readonly slot: number
  readonly reason: "ReleasedTwice" | "UsedAfterRelease" | "ForeignBlock"
}> {
  override get message(): string {
    const what =
      this.reason === "ReleasedTwice"
        ? "released twice"
        : this.reason === "UsedAfterRelease"
          ? "used after it was released"
          : "released into a pool it does not belong to"
    return `BufferPool "${this.pool}": block ${this.slot} ${what}`
  }
}
