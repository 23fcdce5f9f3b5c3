/**
 * Running the real `ezio` process from tests: to completion (bounded), or in the background until
 * its JSON ready line (killed by PID when the scope closes).
 */
import * as NChild from "node:child_process"
import * as NFS from "node:fs"
import * as NOS from "node:os"
import * as NPath from "node:path"
import { assert } from "@effect/vitest"
import { Effect } from "effect"
import { inject } from "vitest"

/**
 * `node` and its arguments before ezio's: the bundle test/globalSetup.ts made, or the sources
 * through tsx where a runner has not made one.
 */
const bundle = inject("ezioBundle")
const ezioCommand =
  bundle !== undefined ? [bundle] : ["--import", "tsx", NPath.resolve(import.meta.dirname, "../src/bin.ts")]

export interface Result {
  readonly code: number | null
  readonly stdout: string
  readonly stderr: string
  readonly ms: number
}

/** Runs `ezio args` to completion; killed after `timeoutMs`. */
export const run = (
  args: ReadonlyArray<string>,
  options: { timeoutMs?: number; env?: Record<string, string> } = {}
) =>
  Effect.promise(
    () =>
      new Promise<Result>((resolve) => {
        const started = Date.now()
        NChild.execFile(
          process.execPath,
          [...ezioCommand, ...args],
          {
            timeout: options.timeoutMs ?? 90_000,
            maxBuffer: 16 * 1024 * 1024,
            env: { ...process.env, ...options.env }
          },
          (error, stdout, stderr) =>
            resolve({
              code: error === null ? 0 : typeof error.code === "number" ? error.code : null,
              stdout,
              stderr,
              ms: Date.now() - started
            })
        )
      })
  )

/** A background `ezio` process: its output so far, its JSON events, its exit. */
export interface Proc {
  readonly child: NChild.ChildProcess
  readonly pid: number
  readonly output: () => string
  readonly errors: () => string
  /** The complete stdout lines that are JSON objects, in order. */
  readonly lines: () => ReadonlyArray<string>
  /** The first JSON line with this `event`; fails if the process exits without printing it. */
  readonly event: (name: string) => Effect.Effect<Record<string, any>, Error>
  readonly exited: Effect.Effect<number | null>
  /** SIGTERM, then the exit code (the process prints its stopped line on the way out). */
  readonly stop: Effect.Effect<number | null>
}

/** Starts `ezio args` in the background; killed by its PID when the scope closes, if still running. */
export const spawn = (args: ReadonlyArray<string>, env: Record<string, string> = {}) =>
  Effect.gen(function* () {
    const child = yield* Effect.acquireRelease(
      Effect.sync(() =>
        NChild.spawn(process.execPath, [...ezioCommand, ...args], {
          stdio: ["ignore", "pipe", "pipe"],
          env: { ...process.env, ...env }
        })
      ),
      (child) =>
        Effect.sync(() => child.exitCode === null && child.signalCode === null && child.kill("SIGKILL"))
    )
    let stdout = ""
    let stderr = ""
    let code: number | null | undefined
    const waiters = new Set<() => void>()
    const wake = () => {
      for (const w of [...waiters]) w()
    }
    child.stdout!.on("data", (d: Buffer) => {
      stdout += d.toString()
      wake()
    })
    child.stderr!.on("data", (d: Buffer) => (stderr += d.toString()))
    const exit = new Promise<number | null>((resolve) =>
      child.once("exit", (c) => {
        code = c
        resolve(c)
        wake()
      })
    )
    const lines = () =>
      stdout
        .split("\n")
        .slice(0, -1)
        .filter((l) => l.startsWith("{"))
    const find = (name: string) => {
      for (const line of lines()) {
        try {
          const parsed = JSON.parse(line) as Record<string, any>
          if (parsed.event === name) return parsed
        } catch {
          continue
        }
      }
      return undefined
    }
    const event = (name: string) =>
      Effect.async<Record<string, any>, Error>((resume) => {
        const check = () => {
          const found = find(name)
          if (found !== undefined) {
            waiters.delete(check)
            resume(Effect.succeed(found))
          } else if (code !== undefined) {
            waiters.delete(check)
            resume(Effect.fail(new Error(`ezio ${args[0]} exited with ${code} before "${name}": ${stderr}`)))
          }
        }
        waiters.add(check)
        check()
        return Effect.sync(() => waiters.delete(check))
      })
    const exited = Effect.promise(() => exit)
    const stop = Effect.promise(() => {
      if (child.exitCode === null && child.signalCode === null) child.kill("SIGTERM")
      return exit
    })
    return {
      child,
      pid: child.pid!,
      output: () => stdout,
      errors: () => stderr,
      lines,
      event,
      exited,
      stop
    } satisfies Proc
  })

export interface Running extends Proc {
  readonly ready: Record<string, unknown>
  readonly port: number
  /** The last JSON status line's fields, if any. */
  readonly status: () => Record<string, unknown> | undefined
}

/** Starts `ezio args` (with --json) and resolves once it prints its ready line. */
export const start = (args: ReadonlyArray<string>, env: Record<string, string> = {}) =>
  Effect.gen(function* () {
    const proc = yield* spawn(args, env)
    const ready = yield* proc.event("ready").pipe(Effect.timeout("90 seconds"))
    const status = () => {
      const lines = proc.lines().filter((l) => l.includes('"event":"status"'))
      return lines.length === 0
        ? undefined
        : (JSON.parse(lines[lines.length - 1]!) as Record<string, unknown>)
    }
    return {
      ...proc,
      ready,
      port: Number(String(ready.listen).split(":").pop()),
      status
    } satisfies Running
  })

/** A temporary directory, removed when the scope closes. */
export const tempDir = Effect.acquireRelease(
  Effect.sync(() => NFS.mkdtempSync(NPath.join(NOS.tmpdir(), "ezio-cli-test-"))),
  (dir) => Effect.sync(() => NFS.rmSync(dir, { recursive: true, force: true }))
)

/** The one stderr line of an expected error: `ezio: ...`, no stack trace. */
export const oneLine = (stderr: string): string => {
  const lines = stderr.trim().split("\n")
  assert.strictEqual(lines.length, 1, stderr)
  assert.match(lines[0]!, /^ezio: /)
  assert.notInclude(stderr, "    at ")
  return lines[0]!
}

/**
 * The stderr of an expected error that warnings may precede (a banned peer, say): the last line is
 * the error, every other line a warning, no stack trace.
 */
export const lastLine = (stderr: string): string => {
  const lines = stderr.trim().split("\n")
  for (const warning of lines.slice(0, -1)) assert.match(warning, /^ezio: warning: /, stderr)
  assert.match(lines.at(-1)!, /^ezio: /)
  assert.notInclude(stderr, "    at ")
  return lines.at(-1)!
}

/** Every stdout line is JSON (with --json). */
export const allJson = (stdout: string): void => {
  for (const line of stdout.split("\n"))
    if (line.trim() !== "") assert.doesNotThrow(() => JSON.parse(line), line)
}

/** Polls `check` every 100 ms, for at most `ms`. */
export const waitUntil = (check: () => boolean, ms = 90_000) =>
  Effect.repeat(Effect.sleep("100 millis"), { until: check }).pipe(Effect.timeout(ms))

export const isRoot = process.getuid?.() === 0
