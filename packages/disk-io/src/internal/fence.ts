/**
 * Ordering (libtorrent's `disk_job_fence`), by sequence number: every write gets the next number;
 * a reader of storage takes a snapshot number, and writes issued after the oldest snapshot wait,
 * so storage never changes under a reader; a waiter sleeps until every write up to its number is
 * on storage. Plain code: the Effect waits on top are in `engine.ts`.
 *
 * @internal
 */

/** @internal */
export interface SeqWaiter {
  readonly seq: number
  readonly wake: () => void
}

/**
 * One piece's fence.
 *
 * @internal
 */
export class Fence {
  /** Snapshots of reads and hashes reading the piece from storage. */
  readonly readers: Array<number> = []
  /** Who waits for the piece's writes up to a sequence number. */
  readonly waiters: Array<SeqWaiter> = []

  /** Writes issued after this may not reach storage yet. */
  limit(): number {
    const readers = this.readers
    if (readers.length === 0) return Infinity
    let min = readers[0]!
    for (let i = 1; i < readers.length; i++) if (readers[i]! < min) min = readers[i]!
    return min
  }

  enter(seq: number): void {
    this.readers.push(seq)
  }

  leave(seq: number): void {
    const readers = this.readers
    const i = readers.indexOf(seq)
    if (i >= 0) {
      readers[i] = readers[readers.length - 1]!
      readers.pop()
    }
  }

  /** Wakes the waiters whose writes are all on storage, `lowest` being the oldest one not yet. */
  wake(lowest: number): void {
    for (let i = 0; i < this.waiters.length;) {
      const waiter = this.waiters[i]!
      if (waiter.seq < lowest) {
        this.waiters.splice(i, 1)
        waiter.wake()
      } else i++
    }
  }

  idle(): boolean {
    return this.readers.length === 0 && this.waiters.length === 0
  }
}

/**
 * Hashes in flight, by piece: a `clearPiece` issued after a hash waits for it, so it cannot drop
 * writes the hash was promised to see.
 *
 * @internal
 */
export class HashFence {
  private readonly inFlight = new Map<string, { count: number; readonly waiters: Array<() => void> }>()

  enter(key: string): void {
    const pending = this.inFlight.get(key)
    if (pending === undefined) this.inFlight.set(key, { count: 1, waiters: [] })
    else pending.count++
  }

  leave(key: string): void {
    const pending = this.inFlight.get(key)
    if (pending === undefined || --pending.count > 0) return
    this.inFlight.delete(key)
    for (const wake of pending.waiters.splice(0)) wake()
  }

  pending(key: string): boolean {
    return this.inFlight.has(key)
  }

  /** Calls `wake` once no hash of `key` (one is pending) is in flight; returns the withdrawal. */
  wait(key: string, wake: () => void): () => void {
    const waiters = this.inFlight.get(key)?.waiters
    if (waiters === undefined) {
      wake()
      return () => {}
    }
    waiters.push(wake)
    return () => {
      const i = waiters.indexOf(wake)
      if (i >= 0) waiters.splice(i, 1)
    }
  }
}
