/**
 * Temp directories and deterministic data for tests and benchmarks.
 */
import * as NCrypto from "node:crypto"
import * as NFS from "node:fs"
import * as NOS from "node:os"
import * as NPath from "node:path"
import { Effect } from "effect"

/** A fresh directory under the OS temp dir, removed with everything in it when the scope closes. */
export const tempDir = (prefix: string) =>
  Effect.acquireRelease(
    Effect.sync(() => NFS.mkdtempSync(NPath.join(NOS.tmpdir(), prefix))),
    (dir) => Effect.sync(() => NFS.rmSync(dir, { recursive: true, force: true }))
  )

/** `n` pseudo-random bytes (xorshift32), the same for the same `seed`: incompressible, reproducible. */
export const random = (n: number, seed: number): Uint8Array => {
  const out = new Uint8Array(n)
  let x = seed >>> 0 || 1
  for (let i = 0; i < n; i++) {
    x ^= x << 13
    x ^= x >>> 17
    x ^= x << 5
    out[i] = x & 0xff
  }
  return out
}

export const sha1 = (data: Uint8Array): Uint8Array =>
  new Uint8Array(NCrypto.createHash("sha1").update(data).digest())

export const sha256 = (data: Uint8Array): Uint8Array =>
  new Uint8Array(NCrypto.createHash("sha256").update(data).digest())

export const hex = (bytes: Uint8Array): string => Buffer.from(bytes).toString("hex")

/** The views back to back in one new array. */
export const concat = (views: ReadonlyArray<Uint8Array>): Uint8Array => {
  const out = new Uint8Array(views.reduce((n, v) => n + v.length, 0))
  let at = 0
  for (const v of views) {
    out.set(v, at)
    at += v.length
  }
  return out
}
