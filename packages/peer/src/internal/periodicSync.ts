// When a download makes what it verified durable before it completes: a power cut must not take
// pieces verified long ago with it (the kernel may hold them dirty for a while, and a target that
// restarts re-fetches what its re-hash finds missing). A sync is due once `bytes` were verified
// since the last one, or `intervalMs` after the first piece it would cover, whichever comes first;
// one at a time. Plain JS: it runs once per verified piece and once a second.

export interface Options {
  /** Verified bytes that make a sync due. */
  readonly bytes: number
  /** How long a verified piece waits for a sync at most (besides the sync's own time). */
  readonly intervalMs: number
}

export const defaults: Options = { bytes: 256 * 1024 * 1024, intervalMs: 10_000 }

export class PeriodicSync {
  private unsynced = 0
  /** When the first piece not covered by a sync was verified. */
  private since = 0
  private running = false
  /** Syncs started. */
  started = 0

  constructor(readonly options: Options = defaults) {}

  /** A piece of `bytes` was verified at `now`. */
  verified(bytes: number, now: number): void {
    if (this.unsynced === 0) this.since = now
    this.unsynced += bytes
  }

  /** Whether a sync should start at `now`. */
  due(now: number): boolean {
    return (
      !this.running &&
      this.unsynced > 0 &&
      (this.unsynced >= this.options.bytes || now - this.since >= this.options.intervalMs)
    )
  }

  /** A sync starts: it covers every piece verified so far. */
  start(): void {
    this.running = true
    this.unsynced = 0
    this.started++
  }

  /** The sync ended (either way); a failed one is the download's failure, not retried here. */
  done(): void {
    this.running = false
  }
}
