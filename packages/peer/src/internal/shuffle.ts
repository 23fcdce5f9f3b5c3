/**
 * The Fisher–Yates shuffle the tracker client (BEP 12 tiers) and the embedded tracker (a random
 * subset of a swarm) both use.
 */

/** Shuffles `items` in place and returns it; `random` in [0, 1) is injectable for tests. */
export const shuffleInPlace = <A>(items: Array<A>, random: () => number = Math.random): Array<A> => {
  for (let i = items.length - 1; i > 0; i--) {
    const j = Math.floor(random() * (i + 1))
    const t = items[i]!
    items[i] = items[j]!
    items[j] = t
  }
  return items
}
