/**
 * Copies plain counters into Effect `Metric`s. A hot path bumps plain numbers (nanoseconds); one
 * Effect, run once a second or on a notable event, moves them into metrics, so metrics cost
 * nothing per block. Gauges take the current value, counters the increase since the last copy.
 *
 * @since 0.1.0
 */
import * as Effect from "effect/Effect"
import * as Metric from "effect/Metric"

/**
 * One metric and how to read its figure from a snapshot `S`.
 *
 * @since 0.1.0
 * @category models
 */
export type Entry<S> =
  | {
      readonly _tag: "Gauge"
      readonly metric: Metric.Metric.Gauge<number>
      readonly read: (snapshot: S) => number
    }
  | {
      readonly _tag: "Counter"
      readonly metric: Metric.Metric.Counter<number>
      readonly read: (snapshot: S) => number
    }

/**
 * A gauge set to `read(snapshot)` on every copy.
 *
 * @since 0.1.0
 * @category constructors
 */
export const gauge = <S>(metric: Metric.Metric.Gauge<number>, read: (snapshot: S) => number): Entry<S> => ({
  _tag: "Gauge",
  metric,
  read
})

/**
 * A counter whose `read(snapshot)` is a running total: each copy adds what it grew by.
 *
 * @since 0.1.0
 * @category constructors
 */
export const counter = <S>(
  metric: Metric.Metric.Counter<number>,
  read: (snapshot: S) => number
): Entry<S> => ({
  _tag: "Counter",
  metric,
  read
})

/**
 * `metric` tagged with every `key: value` of `tags`, in order.
 *
 * @since 0.1.0
 * @category combinators
 */
export const tagged = <Type, In, Out>(
  metric: Metric.Metric<Type, In, Out>,
  tags: Readonly<Record<string, string>>
): Metric.Metric<Type, In, Out> => {
  let out = metric
  for (const [key, value] of Object.entries(tags)) out = Metric.tagged(out, key, value)
  return out
}

/**
 * The copy: an Effect that takes one `snapshot()` and updates every entry from it. It remembers
 * the totals it last saw, so run one per source.
 *
 * @since 0.1.0
 * @category constructors
 */
export const make = <S>(snapshot: () => S, entries: ReadonlyArray<Entry<S>>): Effect.Effect<void> => {
  const last = entries.map(() => 0)
  return Effect.suspend(() => {
    const now = snapshot()
    const effects: Array<Effect.Effect<void>> = []
    for (let i = 0; i < entries.length; i++) {
      const entry = entries[i]!
      const value = entry.read(now)
      if (entry._tag === "Gauge") effects.push(Metric.set(entry.metric, value))
      else {
        if (value > last[i]!) effects.push(Metric.incrementBy(entry.metric, value - last[i]!))
        last[i] = value
      }
    }
    return Effect.all(effects, { discard: true })
  })
}
