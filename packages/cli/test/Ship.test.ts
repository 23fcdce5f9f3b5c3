/**
 * What ships: the packed tarballs installed with npm into an empty prefix, the single executable
 * `dist/ezio`, and an Effect app on the packed libraries, each run from plain `node` on the built
 * JavaScript. The other tests run a bundle of the sources (test/globalSetup.ts); these build once
 * (beforeAll) and share the output.
 */
import * as NChild from "node:child_process"
import * as NFS from "node:fs"
import * as NOS from "node:os"
import * as NPath from "node:path"
import { assert, describe, it } from "@effect/vitest"
import { afterAll, beforeAll } from "vitest"

const root = NPath.resolve(import.meta.dirname, "../../..")
const manifest = JSON.parse(NFS.readFileSync(NPath.resolve(import.meta.dirname, "../package.json"), "utf8"))

/** No NODE_OPTIONS (a loader there would hide a missing build) and no TypeScript tool on PATH. */
const env = (): NodeJS.ProcessEnv => {
  const { NODE_OPTIONS: _ignored, ...rest } = process.env
  return rest
}

interface RunOptions {
  readonly cwd?: string
  readonly timeoutMs?: number
  readonly env?: NodeJS.ProcessEnv
}

/**
 * Runs a command to completion (bounded) and resolves with its output, or rejects with it when it
 * exits non-zero. Asynchronous: a blocked test worker loses its link to vitest.
 */
const exec = (cmd: string, args: ReadonlyArray<string>, options: RunOptions = {}) =>
  new Promise<{ readonly stdout: string; readonly stderr: string }>((resolve, reject) =>
    NChild.execFile(
      cmd,
      [...args],
      {
        cwd: options.cwd ?? root,
        env: { ...env(), ...options.env },
        encoding: "utf8",
        timeout: options.timeoutMs ?? 180_000,
        maxBuffer: 64 * 1024 * 1024
      },
      (error, stdout, stderr) =>
        error === null
          ? resolve({ stdout, stderr })
          : reject(new Error(`${cmd} ${args.join(" ")}: ${error.message}\n${stdout}\n${stderr}`))
    )
  )

const run = async (cmd: string, args: ReadonlyArray<string>, options: RunOptions = {}) =>
  (await exec(cmd, args, options)).stdout

/** `ezio --version` prints the version, and the build's code cache was accepted (it starts at once). */
const assertVersion = async (ezio: string) => {
  const { stdout, stderr } = await exec(ezio, ["--version"], { cwd: work, env: { EZIO_LOG: "debug" } })
  assert.strictEqual(stdout.trim(), manifest.version)
  assert.notInclude(stderr, "code cache")
}

/** pnpm as this run was started (`pnpm test`), else the README's `npx -y pnpm@10`. */
const pnpm = (args: ReadonlyArray<string>, timeoutMs?: number) => {
  const execPath = process.env.npm_execpath
  return execPath !== undefined && /pnpm/.test(NPath.basename(execPath))
    ? run(process.execPath, [execPath, ...args], { ...(timeoutMs === undefined ? {} : { timeoutMs }) })
    : run("npx", ["-y", "pnpm@10", ...args], { ...(timeoutMs === undefined ? {} : { timeoutMs }) })
}

const npm = (args: ReadonlyArray<string>, cwd: string) =>
  run("npm", ["--no-audit", "--no-fund", "--prefer-offline", ...args], { cwd, timeoutMs: 300_000 })

let work = ""
const tarball = (name: string) =>
  NPath.join(work, "pack", `${name.replace("@", "").replace("/", "-")}-0.1.0.tgz`)

beforeAll(async () => {
  work = NFS.mkdtempSync(NPath.join(NOS.tmpdir(), "ezio-ship-"))
  await pnpm(["run", "build"], 400_000)
  await pnpm(["-r", "pack", "--pack-destination", NPath.join(work, "pack")])
}, 600_000)

afterAll(() => {
  if (work !== "") NFS.rmSync(work, { recursive: true, force: true })
})

describe("shipping", () => {
  it("the packed CLI and its @ezio siblings install with npm -g into an empty prefix and run", async () => {
    const prefix = NPath.join(work, "prefix")
    const siblings = Object.keys(manifest.dependencies).filter((name) => name.startsWith("@ezio/"))
    assert.isAbove(siblings.length, 0)
    await npm(["install", "-g", "--prefix", prefix, tarball("@ezio/cli"), ...siblings.map(tarball)], work)

    const installed = NPath.join(prefix, "lib/node_modules/@ezio/cli")
    assert.isFalse(NFS.existsSync(NPath.join(installed, "src")), "the tarball carries no sources")
    for (const tool of ["tsx", "typescript"]) {
      assert.isFalse(NFS.existsSync(NPath.join(installed, "node_modules", tool)), `${tool} is not installed`)
    }
    const pool = JSON.parse(
      NFS.readFileSync(NPath.join(prefix, "lib/node_modules/@ezio/pool/package.json"), "utf8")
    )
    assert.deepStrictEqual(pool.exports["."], {
      types: "./build/dts/index.d.ts",
      default: "./build/esm/index.js"
    })

    const ezio = NPath.join(prefix, "bin/ezio")
    await assertVersion(ezio)
    // The demo creates a torrent (hash workers), seeds, downloads through a tracker and compares.
    assert.include(await run(ezio, ["demo"], { cwd: work }), "byte-identical")
  }, 400_000)

  it("pnpm build:sea writes dist/ezio, one file that runs every command, hash workers included", async () => {
    await pnpm(["run", "build:sea"], 300_000)
    const exe = NPath.join(root, "dist/ezio")
    assert.isTrue(NFS.statSync(exe).isFile())
    await assertVersion(exe)
    assert.include(await run(exe, ["demo"], { cwd: work }), "byte-identical")

    // Copied alone into an empty directory, it still hashes on its workers and reads what it wrote.
    const alone = NPath.join(work, "alone")
    NFS.mkdirSync(alone)
    NFS.copyFileSync(exe, NPath.join(alone, "ezio"))
    NFS.chmodSync(NPath.join(alone, "ezio"), 0o755)
    NFS.writeFileSync(NPath.join(alone, "data.bin"), Buffer.alloc(3 * 1024 * 1024 + 7, 0x5a))
    await run("./ezio", ["create", "data.bin", "-o", "data.torrent"], { cwd: alone })
    assert.include(await run("./ezio", ["verify", "data.torrent", "data.bin"], { cwd: alone }), "pieces good")
  }, 400_000)

  it("an Effect app on the packed @ezio/pool and @ezio/disk-io builds with tsc and reads a file through their layers", async () => {
    const app = NPath.join(work, "effect-app")
    NFS.cpSync(NPath.join(root, "examples/effect-app"), app, {
      recursive: true,
      filter: (path) => !/[/\\](node_modules|build)$/.test(path)
    })
    // The committed file: paths point at build/pack; this copy takes the tarballs packed above.
    const pkg = JSON.parse(NFS.readFileSync(NPath.join(app, "package.json"), "utf8"))
    for (const name of Object.keys(pkg.dependencies)) {
      if (name.startsWith("@ezio/")) pkg.dependencies[name] = `file:${tarball(name)}`
    }
    assert.includeMembers(Object.keys(pkg.dependencies), ["@ezio/pool", "@ezio/disk-io"])
    NFS.writeFileSync(NPath.join(app, "package.json"), JSON.stringify(pkg, null, 2))

    await npm(["install"], app)
    await run("npm", ["run", "build"], { cwd: app })
    const out = await run(process.execPath, [NPath.join(app, "build/main.js")], { cwd: app })
    assert.match(out, /^read 798777 bytes in 4 pieces through DiskIo; piece 1 sha1 [0-9a-f]{40}\n$/)
  }, 400_000)
})
