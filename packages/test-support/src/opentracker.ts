/**
 * Debian's opentracker on 127.0.0.1 for tests. Debian builds it with WANT_ACCESSLIST_WHITE, so it
 * only serves info-hashes listed (40 hex characters a line) in its whitelist file.
 */
import * as ChildProcess from "node:child_process"
import * as Dgram from "node:dgram"
import * as NFS from "node:fs"
import * as Net from "node:net"
import * as OS from "node:os"
import * as NPath from "node:path"
import { Effect, Schedule } from "effect"

export const OPENTRACKER = "/usr/bin/opentracker"
export const hasOpentracker = NFS.existsSync(OPENTRACKER)

const hex = (b: Uint8Array) => Buffer.from(b).toString("hex")

/** A port free for both TCP and UDP on 127.0.0.1 right now. */
export const freeTcpUdpPort: Effect.Effect<number> = Effect.async<number | undefined>((resume) => {
  const server = Net.createServer()
  server.listen(0, "127.0.0.1", () => {
    const port = (server.address() as Net.AddressInfo).port
    const udp = Dgram.createSocket("udp4")
    udp.once("error", () => server.close(() => resume(Effect.succeed(undefined))))
    udp.bind(port, "127.0.0.1", () => udp.close(() => server.close(() => resume(Effect.succeed(port)))))
  })
}).pipe(
  Effect.flatMap((port) => (port === undefined ? Effect.fail("busy" as const) : Effect.succeed(port))),
  Effect.retry(Schedule.recurs(20)),
  Effect.orDie
)

/** Starts opentracker on 127.0.0.1 with a whitelist; kills that process (by its PID) when the scope closes. */
export const opentracker = (whitelist: ReadonlyArray<Uint8Array>) =>
  Effect.gen(function* () {
    const port = yield* freeTcpUdpPort
    const dir = NFS.mkdtempSync(NPath.join(OS.tmpdir(), "ezio-opentracker-"))
    // opentracker chroots into its rootdir and drops to "nobody" when run as root: keep it readable
    NFS.chmodSync(dir, 0o755)
    NFS.writeFileSync(NPath.join(dir, "whitelist"), whitelist.map((h) => `${hex(h)}\n`).join(""), {
      mode: 0o644
    })
    NFS.writeFileSync(
      NPath.join(dir, "opentracker.conf"),
      `listen.tcp_udp 127.0.0.1:${port}\ntracker.rootdir ${dir}\naccess.whitelist whitelist\n`,
      { mode: 0o644 }
    )
    const child = yield* Effect.acquireRelease(
      Effect.sync(() =>
        ChildProcess.spawn(OPENTRACKER, ["-f", NPath.join(dir, "opentracker.conf")], {
          stdio: ["ignore", "ignore", "pipe"]
        })
      ),
      (child) =>
        Effect.sync(() => {
          if (child.pid !== undefined && child.exitCode === null) process.kill(child.pid, "SIGKILL")
          NFS.rmSync(dir, { recursive: true, force: true })
        })
    )
    let stderr = ""
    child.stderr?.on("data", (d: Buffer) => (stderr += d.toString()))
    return { port, child, stderr: () => stderr }
  })
