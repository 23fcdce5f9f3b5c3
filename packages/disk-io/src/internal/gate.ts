/**
 * The bounded concurrency of storage and hash jobs (libtorrent's `disk_io_thread_pool`): a
 * counting semaphore in plain code, so taking a free permit is a comparison.
 *
 * @internal
 */
import * as Effect from "effect/Effect"

/** @internal */
export interface GateWaiter {
  granted: boolean
  cancelled: boolean
  wake: (() => void) | undefined
}

/**
 * The analogue of a thread pool's free threads: `tryTake` is a comparison, waiting is first come,
 * first served.
 *
 * @internal
 */
export class Gate {
  private readonly waiters: Array<GateWaiter | undefined> = []
  private head = 0
  constructor(public permits: number) {}

  get waiting(): number {
    return this.waiters.length - this.head
  }

  tryTake(): boolean {
    if (this.permits > 0 && this.waiting === 0) {
      this.permits--
      return true
    }
    return false
  }

  enqueue(): GateWaiter {
    const waiter: GateWaiter = { granted: false, cancelled: false, wake: undefined }
    this.waiters.push(waiter)
    return waiter
  }

  /** Interruption of a waiter: leave the queue, or hand back the permit it was just given. */
  cancel(waiter: GateWaiter): void {
    if (waiter.cancelled) return
    waiter.cancelled = true
    if (waiter.granted) this.release()
  }

  release(): void {
    while (this.head < this.waiters.length) {
      const waiter = this.waiters[this.head]!
      // Served slots are cleared so the queue holds no finished waiter until it is compacted.
      this.waiters[this.head++] = undefined
      if (waiter.cancelled) continue
      waiter.granted = true
      this.compact()
      waiter.wake?.()
      return
    }
    this.compact()
    this.permits++
  }

  private compact(): void {
    if (this.head === this.waiters.length) {
      this.waiters.length = 0
      this.head = 0
    } else if (this.head > 1024) {
      this.waiters.splice(0, this.head)
      this.head = 0
    }
  }
}

/**
 * Waits for a permit of `gate`; interruption leaves the queue or hands the permit back.
 *
 * @internal
 */
export const waitGate = (gate: Gate): Effect.Effect<void> =>
  Effect.async<void>((resume) => {
    const waiter = gate.enqueue()
    waiter.wake = () => resume(Effect.void)
    return Effect.sync(() => gate.cancel(waiter))
  })

/** @internal */
export const takeGate = (gate: Gate): Effect.Effect<void> =>
  Effect.suspend(() => (gate.tryTake() ? Effect.void : waitGate(gate)))
