// The swarm's upload limit with EZIO's optional slow start: a token bucket whose rate ramps up.
// Plain code per request batch; time comes from the Clock it is made with, and the wake-up of
// the peers it holds back is a fiber sleeping on that Clock (so tests drive it with TestClock).
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
import * as FiberSet from "effect/FiberSet"
import type * as Scope from "effect/Scope"

export interface SlowStart {
  readonly initialRate: number
  readonly periodMs: number
}

export class RateLimiter {
  private tokens = 0
  private last: number
  private readonly started: number
  private sleeping = false
  private readonly waiting: Array<() => void> = []

  /** `sleep(ms, f)` calls `f` after `ms` milliseconds, unless the limiter's scope closed. */
  constructor(
    private readonly limit: number,
    private readonly slowStart: SlowStart | undefined,
    private readonly now: () => number,
    private readonly sleep: (ms: number, f: () => void) => void
  ) {
    this.started = this.last = now()
  }

  /** Bytes per second allowed now, or Infinity. */
  rate(): number {
    const limit = this.limit > 0 ? this.limit : Infinity
    if (this.slowStart === undefined) return limit
    const elapsed = this.now() - this.started
    if (elapsed >= this.slowStart.periodMs) return limit
    // Doubles every tenth of the period from the initial rate (EZIO's --slow-start ramps up).
    const ramp = this.slowStart.initialRate * Math.pow(2, (10 * elapsed) / this.slowStart.periodMs)
    return Math.min(limit, ramp)
  }

  /** 0 if `bytes` may go now (and takes them), else milliseconds to wait. */
  take(bytes: number): number {
    const rate = this.rate()
    if (rate === Infinity) return 0
    const now = this.now()
    this.tokens = Math.min(rate, this.tokens + ((now - this.last) / 1000) * rate)
    this.last = now
    if (this.tokens >= bytes || this.tokens >= rate) {
      this.tokens -= bytes
      return 0
    }
    return Math.max(5, Math.ceil(((bytes - this.tokens) / rate) * 1000))
  }

  /** Calls `f` in `delay` ms, with every other waiter (one sleep for all of them). */
  wake(delay: number, f: () => void): void {
    this.waiting.push(f)
    if (this.sleeping) return
    this.sleeping = true
    this.sleep(delay, () => {
      this.sleeping = false
      const all = this.waiting.splice(0)
      for (const g of all) g()
    })
  }
}

/** A limiter on the current Clock; its sleeping fiber is interrupted when the scope closes. */
export const make = (
  limit: number,
  slowStart: SlowStart | undefined
): Effect.Effect<RateLimiter, never, Scope.Scope> =>
  Effect.gen(function* () {
    const clock = yield* Effect.clock
    const run = yield* FiberSet.makeRuntime<never, void, never>()
    return new RateLimiter(
      limit,
      slowStart,
      () => clock.unsafeCurrentTimeMillis(),
      (ms, f) =>
        run(Effect.sleep(ms)).addObserver((exit) => {
          if (Exit.isSuccess(exit)) f()
        })
    )
  })
