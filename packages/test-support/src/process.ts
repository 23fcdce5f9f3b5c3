/** What the real-client harnesses share: the binaries, child processes bound to a scope, free ports. */
import * as ChildProcess from "node:child_process"
import * as NFS from "node:fs"
import * as Net from "node:net"
import * as NPath from "node:path"
import { fileURLToPath } from "node:url"
import { Data, Deferred, Duration, Effect, Schedule, type Scope } from "effect"

export const PYTHON = "/usr/bin/python3"
export const ARIA2C = "/usr/bin/aria2c"
export const TRANSMISSION_CLI = "/usr/bin/transmission-cli"
export const LIBTORRENT_SCRIPT = NPath.join(
  NPath.dirname(fileURLToPath(import.meta.url)),
  "libtorrent_client.py"
)

export const probe = (cmd: string, args: ReadonlyArray<string>): boolean => {
  if (!NFS.existsSync(cmd)) return false
  try {
    const r = ChildProcess.spawnSync(cmd, args, { stdio: "ignore", timeout: 10_000 })
    return r.status === 0
  } catch {
    return false
  }
}

/** python3-libtorrent importable by /usr/bin/python3. */
export const hasLibtorrent: boolean = probe(PYTHON, ["-c", "import libtorrent"])
export const hasAria2: boolean = probe(ARIA2C, ["--version"])
export const hasTransmission: boolean = NFS.existsSync(TRANSMISSION_CLI)

export class ClientError extends Data.TaggedError("ClientError")<{
  readonly client: "libtorrent" | "aria2" | "transmission"
  readonly message: string
  readonly stderr?: string
}> {}

// ------------------------------------------------------------------------------------------ utilities

/** A TCP port free on 127.0.0.1 right now (bind :0, read the port, close). */
export const freePort: Effect.Effect<number> = Effect.async<number, Error>((resume) => {
  const server = Net.createServer()
  server.once("error", (e) => resume(Effect.fail(e)))
  server.listen(0, "127.0.0.1", () => {
    const port = (server.address() as Net.AddressInfo).port
    server.close(() => resume(Effect.succeed(port)))
  })
}).pipe(Effect.retry(Schedule.recurs(10)), Effect.orDie)

/** A peer: a port on 127.0.0.1, or "127.0.0.1:PORT". */
export type PeerAddress = number | string

export const peerArg = (p: PeerAddress): string => (typeof p === "number" ? `127.0.0.1:${p}` : p)

export interface Child {
  readonly pid: number
  readonly process: ChildProcess.ChildProcess
  /** Everything written to stderr so far (capped at the last 64 KiB). */
  readonly stderr: () => string
  /** Every complete stdout line so far. */
  readonly lines: () => ReadonlyArray<string>
  /** Resolves with the exit code (or the signal name) when the process ends. */
  readonly exited: Effect.Effect<number | string>
}

export const kill = (pid: number, signal: NodeJS.Signals) => {
  try {
    process.kill(pid, signal)
  } catch {
    // already gone
  }
}

/**
 * Spawns `cmd` and kills it (by its own PID: SIGTERM, then SIGKILL after `graceMs`) when the scope
 * closes. `onLine` sees every stdout line.
 */
export const spawnScoped = (
  cmd: string,
  args: ReadonlyArray<string>,
  options: { readonly cwd?: string; readonly onLine?: (line: string) => void; readonly graceMs?: number } = {}
): Effect.Effect<Child, never, Scope.Scope> =>
  Effect.gen(function* () {
    const exitedDeferred = yield* Deferred.make<number | string>()
    const lines: Array<string> = []
    let stderr = ""
    let partial = ""
    const child = yield* Effect.acquireRelease(
      Effect.sync(() => {
        const child = ChildProcess.spawn(cmd, [...args], {
          stdio: ["ignore", "pipe", "pipe"],
          ...(options.cwd !== undefined ? { cwd: options.cwd } : {})
        })
        child.stdout.on("data", (d: Buffer) => {
          partial += d.toString("utf8")
          let nl: number
          while ((nl = partial.indexOf("\n")) >= 0) {
            const line = partial.slice(0, nl).replace(/\r$/, "")
            partial = partial.slice(nl + 1)
            lines.push(line)
            options.onLine?.(line)
          }
        })
        child.stderr.on("data", (d: Buffer) => {
          stderr += d.toString("utf8")
          if (stderr.length > 65536) stderr = stderr.slice(-65536)
        })
        const done = (code: number | string) => {
          if (partial.length > 0) {
            lines.push(partial)
            options.onLine?.(partial)
            partial = ""
          }
          Deferred.unsafeDone(exitedDeferred, Effect.succeed(code))
        }
        child.once("error", (e) => done(`spawn error: ${e.message}`))
        child.once("close", (code, signal) => done(code ?? signal ?? "unknown"))
        return child
      }),
      (child) =>
        Effect.gen(function* () {
          const pid = child.pid
          if (pid === undefined || (yield* Deferred.isDone(exitedDeferred))) return
          kill(pid, "SIGTERM")
          const ended = yield* Deferred.await(exitedDeferred).pipe(
            Effect.timeout(Duration.millis(options.graceMs ?? 3000)),
            Effect.option
          )
          if (ended._tag === "None") {
            kill(pid, "SIGKILL")
            yield* Deferred.await(exitedDeferred).pipe(Effect.timeout("5 seconds"), Effect.ignore)
          }
        })
    )
    return {
      pid: child.pid ?? -1,
      process: child,
      stderr: () => stderr,
      lines: () => lines,
      exited: Deferred.await(exitedDeferred)
    } satisfies Child
  })

export const parseJson = (line: string): Record<string, unknown> | undefined => {
  if (!line.startsWith("{")) return undefined
  try {
    const v: unknown = JSON.parse(line)
    return typeof v === "object" && v !== null ? (v as Record<string, unknown>) : undefined
  } catch {
    return undefined
  }
}

export const lastJsonWith = (
  lines: ReadonlyArray<string>,
  key: string
): Record<string, unknown> | undefined => {
  for (let i = lines.length - 1; i >= 0; i--) {
    const o = parseJson(lines[i] ?? "")
    if (o !== undefined && key in o) return o
  }
  return undefined
}

/** Sum of the sizes of the regular files under `dir` (recursively), skipping aria2 control files. */
export const directoryBytes = (dir: string): number => {
  let total = 0
  if (!NFS.existsSync(dir)) return 0
  for (const e of NFS.readdirSync(dir, { withFileTypes: true })) {
    const p = NPath.join(dir, e.name)
    if (e.isDirectory()) total += directoryBytes(p)
    else if (e.isFile() && !e.name.endsWith(".aria2")) total += NFS.statSync(p).size
  }
  return total
}
