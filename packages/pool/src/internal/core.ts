/**
 * The pool's mutable core: plain code, no Effect, so the per-block path costs tens of nanoseconds.
 * `BufferPool.ts` puts the Effect API (scopes, waiting, the SubscriptionRef) on top of it.
 *
 * @internal
 */
import type { Block, Category } from "./models.js"
import { BlockOwnershipError } from "../PoolError.js"
import type { Resolved } from "./options.js"

/** @internal */
export const categories: ReadonlyArray<Category> = ["read", "write", "hash"]
const categoryIndex: Record<Category, number> = { read: 0, write: 1, hash: 2 }

/**
 * Blocks live in SharedArrayBuffer slabs of this many bytes (or fewer, for a small pool), made on
 * first need: an idle pool commits no block memory, and hashing workers read blocks in place.
 */
const SLAB_BYTES = 1024 * 1024

/**
 * One lease of one slot. A new handle per acquisition (not per slot) is what lets a stale handle
 * be told apart from the slot's next owner: its generation no longer matches the slot's.
 *
 * @internal
 */
export class BlockHandle implements Block {
  /** Who releases this lease when it closes; undefined = released by hand. */
  holder: Holder | undefined = undefined
  constructor(
    readonly core: PoolCore,
    readonly slot: number,
    readonly generation: number,
    readonly category: Category
  ) {}
  get bytes(): Uint8Array {
    if (this.core.generations[this.slot] !== this.generation) {
      throw new BlockOwnershipError({
        pool: this.core.config.name,
        slot: this.slot,
        reason: "UsedAfterRelease"
      })
    }
    return this.core.views[this.slot]!
  }
  get released(): boolean {
    return this.core.generations[this.slot] !== this.generation
  }
  release(): void {
    this.core.release(this)
  }
  // A block in a log or a failed assertion must not print the whole pool.
  toJSON(): unknown {
    return {
      _id: "Block",
      pool: this.core.config.name,
      slot: this.slot,
      category: this.category,
      released: this.released
    }
  }
  toString(): string {
    return JSON.stringify(this.toJSON())
  }
  [Symbol.for("nodejs.util.inspect.custom")](): unknown {
    return this.toJSON()
  }
}

/**
 * The blocks one scope (or one `withBlocks` call) must release when it closes. A scope gets one
 * holder and one finalizer however many blocks it acquires or receives, so a long-lived
 * connection scope does not collect a finalizer per batch.
 *
 * @internal
 */
export class Holder {
  readonly blocks = new Set<BlockHandle>()
  closed = false
}

/**
 * A request that could not be served at once (hard limit, or others already waiting).
 *
 * @internal
 */
export interface Waiter {
  readonly count: number
  readonly category: Category
  /** Set when served; the waiter then owns these. */
  blocks: Array<BlockHandle> | undefined
  closed: boolean
  cancelled: boolean
  /** Called synchronously when served or when the pool closes. */
  wake: (() => void) | undefined
}

/** @internal */
export interface WatermarkTransition {
  readonly exceeded: boolean
  readonly transitions: number
  readonly inUse: number
}

/** @internal */
export class PoolCore {
  readonly views: Array<Uint8Array> = []
  readonly generations: Array<number> = []
  readonly slabs: Array<SharedArrayBuffer> = []
  private readonly free: Array<number> = []
  private readonly waiters: Array<Waiter> = []
  private waitersHead = 0

  inUse = 0
  peak = 0
  readonly inUseBy: Array<number> = [0, 0, 0]
  readonly acquiredBy: Array<number> = [0, 0, 0]
  released = 0
  waits = 0
  exhausted = 0
  exceeded = false
  transitions = 0
  closed = false

  constructor(
    public config: Resolved,
    /** Told of every watermark transition, synchronously, in order. */
    private readonly onTransition: (transition: WatermarkTransition) => void
  ) {}

  get allocatedBlocks(): number {
    return this.views.length
  }
  get waiting(): number {
    return this.waiters.length - this.waitersHead
  }

  /** Can `count` blocks be taken now without jumping the queue of waiters? */
  canTake(count: number): boolean {
    return !this.closed && this.waiting === 0 && this.inUse + count <= this.config.hardLimitBlocks
  }

  /** Takes one block; the caller has checked `canTake`. */
  take(category: Category): BlockHandle {
    let slot = this.free.pop()
    if (slot === undefined) {
      this.growSlab()
      slot = this.free.pop()!
    }
    const c = categoryIndex[category]
    this.inUse++
    this.inUseBy[c]!++
    this.acquiredBy[c]!++
    if (this.inUse > this.peak) this.peak = this.inUse
    if (!this.exceeded && this.inUse >= this.config.highBlocks) this.transition(true)
    return new BlockHandle(this, slot, this.generations[slot]!, category)
  }

  tryTake(category: Category): BlockHandle | undefined {
    return this.canTake(1) ? this.take(category) : undefined
  }

  takeMany(count: number, category: Category): Array<BlockHandle> {
    const blocks = new Array<BlockHandle>(count)
    for (let i = 0; i < count; i++) blocks[i] = this.take(category)
    return blocks
  }

  release(block: BlockHandle): void {
    if (block.core !== this) {
      throw new BlockOwnershipError({ pool: this.config.name, slot: block.slot, reason: "ForeignBlock" })
    }
    const slot = block.slot
    if (this.generations[slot] !== block.generation) {
      throw new BlockOwnershipError({ pool: this.config.name, slot, reason: "ReleasedTwice" })
    }
    this.generations[slot] = block.generation + 1
    if (block.holder !== undefined) {
      block.holder.blocks.delete(block)
      block.holder = undefined
    }
    this.free.push(slot)
    this.inUse--
    this.inUseBy[categoryIndex[block.category]]!--
    this.released++
    if (this.exceeded && this.inUse <= this.config.lowBlocks) this.transition(false)
    if (this.waitersHead < this.waiters.length) this.serveWaiters()
  }

  /** Puts live blocks in `holder`'s care (taking them from their previous holder, if any). */
  hold(holder: Holder, blocks: ReadonlyArray<BlockHandle>): void {
    for (let i = 0; i < blocks.length; i++) {
      const block = blocks[i]!
      if (block.holder !== undefined) block.holder.blocks.delete(block)
      block.holder = holder
      holder.blocks.add(block)
    }
    // A holder whose scope already closed releases at once, as a finalizer added to a closed scope runs at once.
    if (holder.closed) this.releaseHeld(holder)
  }

  /** Releases what `holder` still holds; blocks released early or handed off are gone from it. */
  releaseHeld(holder: Holder): void {
    holder.closed = true
    for (const block of holder.blocks) this.release(block)
    holder.blocks.clear()
  }

  enqueue(count: number, category: Category): Waiter {
    const waiter: Waiter = {
      count,
      category,
      blocks: undefined,
      closed: false,
      cancelled: false,
      wake: undefined
    }
    this.waiters.push(waiter)
    this.waits++
    return waiter
  }

  /** Interruption of a waiter: leave the queue, or give back what it was already handed. */
  cancel(waiter: Waiter): void {
    if (waiter.cancelled) return
    waiter.cancelled = true
    if (waiter.blocks !== undefined) {
      const blocks = waiter.blocks
      waiter.blocks = undefined
      for (const block of blocks) if (!block.released) this.release(block)
    } else if (!waiter.closed) {
      const index = this.waiters.indexOf(waiter, this.waitersHead)
      if (index >= 0) this.waiters.splice(index, 1)
      // The head may now fit where the cancelled one did not.
      this.serveWaiters()
    }
  }

  /** First come, first served: the head waits until it fits; nobody behind it jumps ahead. */
  serveWaiters(): void {
    while (this.waitersHead < this.waiters.length && !this.closed) {
      const waiter = this.waiters[this.waitersHead]!
      if (this.inUse + waiter.count > this.config.hardLimitBlocks) break
      this.waitersHead++
      waiter.blocks = this.takeMany(waiter.count, waiter.category)
      waiter.wake?.()
    }
    if (this.waitersHead === this.waiters.length) {
      this.waiters.length = 0
      this.waitersHead = 0
    } else if (this.waitersHead > 1024) {
      this.waiters.splice(0, this.waitersHead)
      this.waitersHead = 0
    }
  }

  reconfigure(config: Resolved): void {
    this.config = config
    if (!this.exceeded && this.inUse >= config.highBlocks) this.transition(true)
    else if (this.exceeded && this.inUse <= config.lowBlocks) this.transition(false)
    this.serveWaiters()
  }

  close(): void {
    this.closed = true
    for (let i = this.waitersHead; i < this.waiters.length; i++) {
      const waiter = this.waiters[i]!
      waiter.closed = true
      waiter.wake?.()
    }
    this.waiters.length = 0
    this.waitersHead = 0
  }

  private transition(exceeded: boolean): void {
    this.exceeded = exceeded
    this.transitions++
    this.onTransition({ exceeded, transitions: this.transitions, inUse: this.inUse })
  }

  private growSlab(): void {
    const blockSize = this.config.blockSize
    const perSlab = Math.max(1, Math.floor(SLAB_BYTES / blockSize))
    // Never commit more than the hard limit could use; a later resize may grow it.
    const count = Math.max(1, Math.min(perSlab, this.config.hardLimitBlocks - this.views.length))
    const slab = new SharedArrayBuffer(count * blockSize)
    this.slabs.push(slab)
    const first = this.views.length
    for (let i = 0; i < count; i++) {
      this.views.push(new Uint8Array(slab, i * blockSize, blockSize))
      this.generations.push(0)
    }
    // Pushed in reverse so the lowest slot is handed out first.
    for (let i = count - 1; i >= 0; i--) this.free.push(first + i)
  }
}
