// `/metrics` in the Prometheus text exposition format (version 0.0.4): pool use, bytes, peers,
// pieces, hash failures, and deploy targets by state.
import type { Deploy, Session } from "@ezio/peer"
import type { BufferPool } from "@ezio/pool"

interface Sample {
  readonly name: string
  readonly help: string
  readonly type: "gauge" | "counter"
  readonly values: ReadonlyArray<readonly [labels: Record<string, string>, value: number]>
}

const escape = (value: string) => value.replace(/\\/g, "\\\\").replace(/"/g, '\\"').replace(/\n/g, "\\n")

const labelsText = (labels: Record<string, string>) => {
  const entries = Object.entries(labels)
  return entries.length === 0 ? "" : `{${entries.map(([k, v]) => `${k}="${escape(v)}"`).join(",")}}`
}

export const render = (samples: ReadonlyArray<Sample>): string =>
  samples
    .map(
      (s) =>
        `# HELP ${s.name} ${s.help}\n# TYPE ${s.name} ${s.type}\n` +
        s.values.map(([labels, value]) => `${s.name}${labelsText(labels)} ${value}`).join("\n")
    )
    .join("\n") + "\n"

export interface Sources {
  readonly pool: BufferPool.Stats
  readonly swarms: ReadonlyArray<{ readonly name: string; readonly status: Session.Status }>
  readonly deploy: Deploy.Snapshot | undefined
}

export const metricsText = ({ deploy, pool, swarms }: Sources): string => {
  const per = (f: (s: Session.Status) => number) =>
    swarms.map((s) => [{ torrent: s.name }, f(s.status)] as const)
  const samples: Array<Sample> = [
    {
      name: "ezio_pool_in_use_bytes",
      help: "Pool bytes in use",
      type: "gauge",
      values: [[{}, pool.inUse * pool.blockSize]]
    },
    {
      name: "ezio_pool_capacity_bytes",
      help: "Pool capacity",
      type: "gauge",
      values: [[{}, pool.capacityBlocks * pool.blockSize]]
    },
    {
      name: "ezio_pool_peak_bytes",
      help: "Most pool bytes in use at once",
      type: "gauge",
      values: [[{}, pool.peak * pool.blockSize]]
    },
    {
      name: "ezio_uploaded_bytes_total",
      help: "Bytes sent to peers",
      type: "counter",
      values: per((s) => s.uploaded)
    },
    {
      name: "ezio_downloaded_bytes_total",
      help: "Bytes received from peers",
      type: "counter",
      values: per((s) => s.downloaded)
    },
    { name: "ezio_peers", help: "Connected peers", type: "gauge", values: per((s) => s.peers) },
    { name: "ezio_pieces_have", help: "Verified pieces", type: "gauge", values: per((s) => s.have) },
    { name: "ezio_pieces", help: "Pieces in the torrent", type: "gauge", values: per((s) => s.pieces) },
    {
      name: "ezio_hash_failures_total",
      help: "Pieces that failed their hash check",
      type: "counter",
      values: per((s) => s.hashFailures)
    }
  ]
  if (deploy !== undefined)
    samples.push({
      name: "ezio_deploy_targets",
      help: "Deploy targets by state",
      type: "gauge",
      values: Object.entries(deploy.totals.byState).map(([state, n]) => [{ state }, n] as const)
    })
  return render(samples)
}
