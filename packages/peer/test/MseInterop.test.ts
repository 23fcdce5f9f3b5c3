/**
 * MSE/PE with real clients on 127.0.0.1: python3-libtorrent at its default settings dialling our
 * seeder (it opens with MSE; we choose plaintext), libtorrent forcing RC4 for the whole stream,
 * our downloader requiring MSE from a libtorrent seeder that accepts nothing else, falling back to
 * plaintext from one that refuses MSE, ezio to ezio, and transmission-cli at its defaults.
 */
import * as NFS from "node:fs"
import * as Net from "node:net"
import * as NPath from "node:path"
import { assert, describe, it } from "@effect/vitest"
import { DiskIo } from "@ezio/disk-io"
import { Session } from "@ezio/peer"
import { BufferPool } from "@ezio/pool"
import { Hasher, Layout, Storage } from "@ezio/storage"
import { Metainfo } from "@ezio/torrent"
import { Effect, Either, Fiber, Layer } from "effect"
import * as TorrentSupport from "./torrentSupport.js"
import {
  freePort,
  hasLibtorrent,
  hasTransmission,
  libtorrentDownload,
  libtorrentSeed,
  transmissionDownload
} from "@ezio/test-support/clients"

const env = DiskIo.layer().pipe(
  Layer.provideMerge(Hasher.layer({ threads: 2 })),
  Layer.provideMerge(BufferPool.layer({ capacity: 8 * 1024 * 1024 }))
)

/** libtorrent's settings_pack values. */
const PE_FORCED = 0
const PE_DISABLED = 2
const PE_RC4 = 2

const tempDir = TorrentSupport.tempDir("ezio-mse-")
const singleFile = (dir: string, size: number) => TorrentSupport.singleFileOnDisk(dir, size, 256 * 1024)
const full = TorrentSupport.full
const listening = TorrentSupport.listening

/** Our seeder of `dir/src`, with the session's defaults (plaintext for the connections it opens). */
const seed = (dir: string, meta: Metainfo.Metainfo, options: Session.Options = {}) =>
  Effect.gen(function* () {
    const layout = Either.getOrThrow(Layout.fromMetainfo(meta))
    const storage = yield* Storage.makeDirectory({ layout, root: NPath.join(dir, "src"), mode: "read" })
    const session = yield* Session.make({ host: "127.0.0.1", port: 0, ...options })
    const swarm = yield* session.add({ metainfo: meta, storage, have: full(meta) })
    return { session, swarm }
  })

/** Our downloader into `dir/out` from 127.0.0.1:`port`; resolves with the downloaded bytes. */
const download = (dir: string, meta: Metainfo.Metainfo, port: number, encryption: Session.Encryption) =>
  Effect.gen(function* () {
    const layout = Either.getOrThrow(Layout.fromMetainfo(meta))
    const root = NPath.join(dir, "out")
    const storage = yield* Storage.makeDirectory({ layout, root })
    const session = yield* Session.make({ host: "127.0.0.1", port: 0, encryption })
    const swarm = yield* session.add({ metainfo: meta, storage })
    yield* swarm.connect("127.0.0.1", port)
    yield* swarm.complete.pipe(Effect.timeout("60 seconds"))
    yield* DiskIo.DiskIo.pipe(Effect.flatMap((disk) => disk.flush(swarm.disk)))
    assert.strictEqual(swarm.unsafeStatus().hashFailures, 0)
    return NFS.readFileSync(NPath.join(root, "disk.img"))
  })

/** libtorrent downloads from our seeder; the summary and what it saved. */
const libtorrentFromUs = (settings: Record<string, number>) =>
  Effect.gen(function* () {
    const dir = yield* tempDir
    const { data, meta, torrent } = yield* singleFile(dir, 8 * 1024 * 1024 + 4321)
    const { session } = yield* seed(dir, meta)
    const out = NPath.join(dir, "out")
    NFS.mkdirSync(out)
    const summary = yield* libtorrentDownload({
      torrent,
      saveDir: out,
      peers: [session.port],
      preset: "default",
      settings,
      timeoutMs: 45_000
    })
    assert.isTrue(summary.done, JSON.stringify(summary))
    assert.strictEqual(summary.hash_failures, 0)
    assert.isTrue(NFS.readFileSync(NPath.join(out, "disk.img")).equals(data), "the copy differs")
    const ours = summary.peers.filter((p) => p.address === `127.0.0.1:${session.port}`)
    assert.strictEqual(ours.length, 1, JSON.stringify(summary.peers))
    return ours[0]!.encryption
  })

/** One connection through `relay`: how the dialler began, and what the target answered. */
interface Relayed {
  /** The dialler's first bytes (up to 20): "\x13BitTorrent protocol" for a plaintext handshake. */
  head: Buffer
  toTarget: number
  /** The target's first bytes (up to 4 KiB). */
  fromTarget: Buffer
}

/**
 * A TCP relay on 127.0.0.1 to 127.0.0.1:`target`, recording each connection it relays: it shows
 * how our dial started and whether the answer was in the clear.
 */
const relay = (target: number) =>
  Effect.acquireRelease(
    Effect.async<{ readonly port: number; readonly seen: Array<Relayed>; readonly server: Net.Server }>(
      (resume) => {
        const seen: Array<Relayed> = []
        const server = Net.createServer((down) => {
          const record: Relayed = { head: Buffer.alloc(0), toTarget: 0, fromTarget: Buffer.alloc(0) }
          const up = Net.connect(target, "127.0.0.1", () => seen.push(record))
          const end = () => {
            up.destroy()
            down.destroy()
          }
          down.on("data", (chunk: Buffer) => {
            if (record.head.length < 20) record.head = Buffer.concat([record.head, chunk]).subarray(0, 20)
            record.toTarget += chunk.length
            up.write(chunk)
          })
          up.on("data", (chunk: Buffer) => {
            if (record.fromTarget.length < 4096)
              record.fromTarget = Buffer.concat([record.fromTarget, chunk]).subarray(0, 4096)
            down.write(chunk)
          })
          for (const s of [up, down]) {
            s.on("error", end)
            s.on("close", end)
          }
        })
        server.listen(0, "127.0.0.1", () =>
          resume(Effect.succeed({ port: (server.address() as Net.AddressInfo).port, seen, server }))
        )
      }
    ),
    ({ server }) => Effect.sync(() => server.close())
  )

describe("MSE/PE interop", () => {
  it.live.skipIf(!hasLibtorrent)(
    "libtorrent at its defaults opens with MSE and we select plaintext: plaintext_encrypted, byte-identical",
    () =>
      libtorrentFromUs({}).pipe(
        Effect.map((encryption) => assert.strictEqual(encryption, "plaintext_encrypted")),
        Effect.scoped,
        Effect.provide(env)
      ),
    60_000
  )

  it.live.skipIf(!hasLibtorrent)(
    "libtorrent forcing MSE with RC4 only gets RC4 for the whole stream: rc4_encrypted, byte-identical",
    () =>
      libtorrentFromUs({ out_enc_policy: PE_FORCED, allowed_enc_level: PE_RC4 }).pipe(
        Effect.map((encryption) => assert.strictEqual(encryption, "rc4_encrypted")),
        Effect.scoped,
        Effect.provide(env)
      ),
    60_000
  )

  it.live.skipIf(!hasLibtorrent)(
    'with encryption "require" we download from a libtorrent seeder that accepts only MSE with RC4',
    () =>
      Effect.gen(function* () {
        const dir = yield* tempDir
        const { data, meta, torrent } = yield* singleFile(dir, 8 * 1024 * 1024 + 777)
        const seeder = yield* libtorrentSeed({
          torrent,
          saveDir: NPath.join(dir, "src"),
          noTrackers: true,
          settings: { in_enc_policy: PE_FORCED, out_enc_policy: PE_FORCED, allowed_enc_level: PE_RC4 }
        })
        const copy = yield* download(dir, meta, seeder.port, "require")
        assert.isTrue(copy.equals(data), "the copy differs")
      }).pipe(Effect.scoped, Effect.provide(env)),
    90_000
  )

  it.live.skipIf(!hasLibtorrent)(
    'with encryption "prefer" we fall back to plaintext from a libtorrent seeder that refuses MSE',
    () =>
      Effect.gen(function* () {
        const dir = yield* tempDir
        const { data, meta, torrent } = yield* singleFile(dir, 4 * 1024 * 1024 + 99)
        const seeder = yield* libtorrentSeed({
          torrent,
          saveDir: NPath.join(dir, "src"),
          noTrackers: true,
          settings: { in_enc_policy: PE_DISABLED, out_enc_policy: PE_DISABLED }
        })
        const copy = yield* download(dir, meta, seeder.port, "prefer")
        assert.isTrue(copy.equals(data), "the copy differs")
      }).pipe(Effect.scoped, Effect.provide(env)),
    90_000
  )

  it.effect("Session.make refuses an encryption it does not know, naming it", () =>
    Effect.gen(function* () {
      const error = yield* Effect.flip(
        Session.make({ listen: false, encryption: "maybe" as Session.Encryption })
      )
      assert.strictEqual(
        error.message,
        'Session.make: option encryption = maybe must be "plaintext", "prefer" or "require"'
      )
    }).pipe(Effect.scoped, Effect.provide(env))
  )

  it.live(
    'ezio to ezio: a downloader with encryption "require" completes from a default seeder',
    () =>
      Effect.gen(function* () {
        const dir = yield* tempDir
        const { data, meta } = yield* singleFile(dir, 6 * 1024 * 1024 + 5)
        const { session } = yield* seed(dir, meta)
        const copy = yield* download(dir, meta, session.port, "require")
        assert.isTrue(copy.equals(data), "the copy differs")
      }).pipe(Effect.scoped, Effect.provide(env)),
    60_000
  )

  it.live.skipIf(!hasTransmission)(
    'transmission-cli at its defaults downloads from our seeder dialling it with encryption "prefer"',
    () =>
      Effect.gen(function* () {
        const dir = yield* tempDir
        const { data, meta, torrent } = yield* singleFile(dir, 4 * 1024 * 1024 + 3)
        const port = yield* freePort
        const via = yield* relay(port)
        const { swarm } = yield* seed(dir, meta, { encryption: "prefer" })
        const out = NPath.join(dir, "out")
        NFS.mkdirSync(out)
        const download = yield* Effect.fork(
          transmissionDownload({ torrent, dir: out, listenPort: port, timeoutMs: 60_000 })
        )
        // transmission-cli cannot dial: the seeder dials it, once it listens (before, the relay
        // would take the connection and drop it, which looks like a peer without MSE).
        yield* listening(port)
        yield* swarm.connect("127.0.0.1", via.port)
        const result = yield* Fiber.join(download)
        assert.isTrue(result.done, result.stderr + result.stdout)
        assert.isTrue(NFS.readFileSync(NPath.join(out, "disk.img")).equals(data), "the copy differs")
        // The data went over a connection that opened with MSE, not a plaintext fallback.
        const carrier = via.seen.filter((r) => r.toTarget >= data.length)
        assert.strictEqual(
          carrier.length,
          1,
          JSON.stringify(via.seen.map((r) => [r.head.toString("hex"), r.toTarget]))
        )
        assert.notStrictEqual(
          carrier[0]!.head.toString("latin1"),
          "\x13BitTorrent protocol",
          "our dial opened with a plaintext handshake"
        )
        const clear = carrier[0]!.fromTarget.includes("BitTorrent protocol")
        console.log(`transmission answered MSE and selected ${clear ? "plaintext" : "RC4"}`)
      }).pipe(Effect.scoped, Effect.provide(env)),
    90_000
  )
})
