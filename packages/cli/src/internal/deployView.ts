// The seeder's deploy in text: the live table a terminal redraws in place, and the summary at the
// end (text or JSON). Pure functions of a `Deploy.Snapshot`.
import type { Deploy } from "@ezio/peer"
import { formatBytes, formatRate } from "./format.js"

const label = (t: Deploy.Target) => t.name ?? t.address
const percent = (t: Deploy.Target) =>
  `${(Math.floor((t.size > 0 ? t.have / t.size : 1) * 1000) / 10).toFixed(1)}%`
const seconds = (s: number | undefined) =>
  s === undefined ? "-" : s < 60 ? `${Math.ceil(s)} s` : `${Math.floor(s / 60)} min ${Math.ceil(s % 60)} s`
const pad = (text: string, width: number) =>
  text.length >= width ? text : text + " ".repeat(width - text.length)

/** Targets complete (seeding or done), for "done/total". */
export const finishedCount = (s: Deploy.Snapshot) => s.totals.byState.done + s.totals.byState.seeding

/** The live table: a header line, then the slowest targets still downloading. */
export const table = (s: Deploy.Snapshot, expected: number | undefined, rows = 5): Array<string> => {
  const t = s.totals
  const total = Math.max(expected ?? 0, t.total)
  const lines = [
    `deploy: ${finishedCount(s)}/${total} done, ${t.byState.downloading} downloading, ${t.byState.gone} gone` +
      `  rate ${formatRate(t.downloadRate)}  ETA ${t.byState.downloading === 0 ? "-" : seconds(t.eta)}`
  ]
  const slow = s.targets
    .filter((x) => x.state === "downloading")
    .sort((a, b) => a.have / Math.max(1, a.size) - b.have / Math.max(1, b.size))
    .slice(0, rows)
  for (const x of slow)
    lines.push(
      `  ${pad(label(x), 24)} ${pad(percent(x), 7)} ${pad(formatRate(x.downloadRate), 12)} ${x.state}`
    )
  return lines
}

export interface SummaryRow {
  readonly name: string | undefined
  readonly peerId: string
  readonly address: string
  readonly state: Deploy.TargetState
  /** Seconds from its first announce to complete; undefined if it never completed. */
  readonly seconds: number | undefined
  /** Bytes per second over that time. */
  readonly averageRate: number | undefined
  /** Bytes it sent to other targets. */
  readonly served: number
}

export const summaryRows = (s: Deploy.Snapshot): Array<SummaryRow> =>
  s.targets.map((t) => {
    const secs = t.completedAt === undefined ? undefined : (t.completedAt - t.firstSeen) / 1000
    return {
      name: t.name,
      peerId: t.peerId,
      address: t.address,
      state: t.state,
      seconds: secs,
      averageRate: secs === undefined ? undefined : t.size / Math.max(secs, 0.001),
      served: t.uploaded
    }
  })

export const summaryJson = (s: Deploy.Snapshot, elapsed: number) => ({
  event: "deploy",
  seconds: elapsed,
  targets: s.totals.total,
  done: finishedCount(s),
  summary: summaryRows(s)
})

export const summaryText = (s: Deploy.Snapshot, elapsed: number): string => {
  const rows = summaryRows(s)
  const lines = [
    `deploy summary: ${finishedCount(s)}/${s.totals.total} targets complete in ${elapsed.toFixed(1)} s`
  ]
  if (rows.length > 0)
    lines.push(
      `  ${pad("target", 24)} ${pad("address", 22)} ${pad("complete in", 12)} ${pad("avg rate", 12)} served`
    )
  for (const r of rows)
    lines.push(
      `  ${pad(r.name ?? r.peerId.slice(0, 16), 24)} ${pad(r.address, 22)} ${pad(r.seconds === undefined ? r.state : `${r.seconds.toFixed(1)} s`, 12)} ${pad(r.averageRate === undefined ? "-" : formatRate(r.averageRate), 12)} ${formatBytes(r.served)}`
    )
  return lines.join("\n")
}

/** How a target that has not finished is named in a DeployIncomplete error. */
export const unfinished = (s: Deploy.Snapshot): Array<string> =>
  s.targets.filter((t) => t.state !== "done").map((t) => `${label(t)} (${t.state}, ${percent(t)})`)
