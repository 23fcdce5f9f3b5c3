// The CLI's logger: every log line on stderr (stdout holds only status lines, or only JSON with
// --json), the failure's own message instead of a stack for expected errors, and a message repeated
// within an interval printed once with a count, so a failing disk or peer cannot flood the terminal.
import * as Cause from "effect/Cause"
import * as Logger from "effect/Logger"
import * as LogLevel from "effect/LogLevel"

/** Identical lines within `intervalMs`: the first is written, the rest counted and summed up once. */
export class Coalescer {
  private readonly pending = new Map<string, { since: number; repeats: number }>()

  constructor(
    private readonly write: (line: string) => void,
    private readonly intervalMs: number,
    private readonly now: () => number = Date.now
  ) {}

  line(text: string): void {
    const now = this.now()
    const entry = this.pending.get(text)
    if (entry !== undefined && now - entry.since < this.intervalMs) {
      entry.repeats++
      return
    }
    if (entry !== undefined) this.summary(text, entry)
    this.pending.set(text, { since: now, repeats: 0 })
    this.write(text)
  }

  /** Writes the counts of lines repeated since they were written; forgets lines gone quiet. */
  flush(all = false): void {
    const now = this.now()
    for (const [text, entry] of this.pending) {
      if (!all && now - entry.since < this.intervalMs) continue
      this.summary(text, entry)
      this.pending.delete(text)
    }
  }

  private summary(text: string, entry: { since: number; repeats: number }): void {
    if (entry.repeats > 0)
      this.write(`${text} (repeated ${entry.repeats} more time${entry.repeats === 1 ? "" : "s"})`)
  }
}

const textOf = (message: unknown): string =>
  Array.isArray(message)
    ? message.map(textOf).join(" ")
    : typeof message === "string"
      ? message
      : String(message)

/** A cause's own message; the full trace only when debugging (EZIO_LOG=debug). */
const causeText = (cause: Cause.Cause<unknown>, debug: boolean): string => {
  if (Cause.isEmpty(cause)) return ""
  if (debug) return `\n${Cause.pretty(cause)}`
  const failure = Cause.failureOption(cause)
  if (failure._tag === "Some") {
    const error = failure.value as { message?: unknown }
    return `: ${typeof error.message === "string" ? error.message : String(failure.value)}`
  }
  return `: ${Cause.squash(cause) instanceof Error ? (Cause.squash(cause) as Error).message : "unexpected error"}`
}

/** Replaces Effect's default logger (stdout, with stacks) with the CLI's. */
export const layer = (options: { readonly debug: boolean; readonly intervalMs?: number }) => {
  const coalescer = new Coalescer((line) => process.stderr.write(`${line}\n`), options.intervalMs ?? 10_000)
  const timer = setInterval(() => coalescer.flush(), options.intervalMs ?? 10_000)
  timer.unref()
  process.once("exit", () => coalescer.flush(true))
  const logger = Logger.make<unknown, void>(({ cause, logLevel, message }) => {
    const level = logLevel === LogLevel.Warning ? "warning" : logLevel.label.toLowerCase()
    coalescer.line(`ezio: ${level}: ${textOf(message)}${causeText(cause, options.debug)}`)
  })
  return Logger.replace(Logger.defaultLogger, logger)
}
