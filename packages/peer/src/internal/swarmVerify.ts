// A swarm's verdict on a piece whose blocks are all written: hashed, then announced and offered
// to `pieces`, or cleared and fetched again, with the smart-ban judge (smartBan.ts) told who sent
// what. Per piece, not per block: plain functions over the swarm's state, which `SwarmCore` owns.
import type { DiskIo } from "@ezio/disk-io"
import type { Metainfo } from "@ezio/torrent"
import * as Cause from "effect/Cause"
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
import type * as PubSub from "effect/PubSub"
import * as Take from "effect/Take"
import * as Wire from "../Wire.js"
import type { Connection } from "./connection.js"
import type { CutThrough } from "./cutThrough.js"
import type { PeriodicSync } from "./periodicSync.js"
import * as Retract from "./retract.js"
import { BLOCK, type Picker } from "./picker.js"
import { blockDigests, type SmartBan, type Verdict } from "./smartBan.js"

/**
 * A failure's own message (an expected error names what and where), the storage error's when it
 * wraps one (the errno and the path are what a user acts on), a stack only for a defect.
 */
export const messageOf = (
  cause: Cause.Cause<{ readonly message: string; readonly cause?: unknown }>
): string => {
  const failure = Cause.failureOption(cause)
  if (failure._tag === "None") return Cause.pretty(cause)
  const inner = failure.value.cause as { readonly _tag?: unknown; readonly message?: unknown } | undefined
  return inner?._tag === "StorageError" && typeof inner.message === "string"
    ? inner.message
    : failure.value.message
}

/** The part of the swarm these functions use. */
export interface VerifyCore {
  readonly closed: boolean
  readonly metainfo: Metainfo.Metainfo
  readonly picker: Picker<Connection>
  readonly disk: DiskIo.DiskIoService
  readonly handle: DiskIo.TorrentHandle
  readonly smartBan: SmartBan
  readonly cutThrough: CutThrough
  /** A received block is to be fetched again (the picker's and cut-through's records of it). */
  readonly unreceive: (piece: number, begin: number) => void
  readonly periodicSync: PeriodicSync
  readonly connections: ReadonlySet<Connection>
  /** Peer ids (hex) of banned peers. */
  readonly bannedIds: Set<string>
  readonly pieces: PubSub.PubSub<Take.Take<number>>
  downloading: boolean
  hashFailures: number
  readonly now: () => number
  readonly runThen: <A, E>(effect: Effect.Effect<A, E>, onExit: (exit: Exit.Exit<A, E>) => void) => void
  readonly run: <A, E>(effect: Effect.Effect<A, E>) => unknown
  readonly log: (message: string) => void
  readonly fail: (message: string) => void
  readonly markComplete: () => void
}

/**
 * Once a second: peers with no request outstanding fill their queue again. A piece held back
 * from a peer for a while (a smart-ban lease or backoff, a refusal in initial seeding) comes free
 * with time, not with a message, and an idle peer sends none that would make it ask.
 */
export const wakeIdle = (core: Pick<VerifyCore, "connections" | "downloading">): void => {
  if (!core.downloading) return
  for (const c of core.connections) if (c.outstanding.size === 0) c.fill()
}

/**
 * While downloading, makes what was verified durable now and then (periodicSync.ts says when):
 * one `sync` job at a time, beside the downloads; a failed one stops the download like a failed
 * write. Called per verified piece and once a second; completion has its own sync.
 */
export const syncIfDue = (core: VerifyCore): void => {
  if (core.closed || !core.downloading || !core.periodicSync.due(core.now())) return
  core.periodicSync.start()
  // What was verified is on storage already (a hash answers once its writes are): no flush, which
  // would write the pieces still arriving in part and have their hashes read them back.
  core.runThen(core.disk.syncStored(core.handle), (synced) => {
    core.periodicSync.done()
    if (core.closed || Exit.isSuccess(synced) || Cause.isInterruptedOnly(synced.cause)) return
    core.fail(`syncing the verified pieces: ${messageOf(synced.cause)}`)
  })
}

/** Hashes `piece` once its blocks are all written, then keeps it or fetches it again. */
export const maybeHash = (core: VerifyCore, piece: number): void => {
  const state = core.picker.partial.get(piece)
  if (state === undefined || state.hashing || state.missing > 0) return
  state.hashing = true
  // Plain code, no fiber per piece: the engine waits for it when it closes.
  core.disk.unsafeHash(core.handle, piece, {}, (exit) => {
    if (core.closed) return
    const expected = core.metainfo.pieces.subarray(piece * 20, piece * 20 + 20)
    if (Exit.isSuccess(exit) && Buffer.compare(exit.value.sha1, expected) === 0) passed(core, piece)
    else if (Exit.isSuccess(exit)) {
      core.hashFailures++
      // Passed on before it was verified: its receivers hold the same bad blocks from us.
      if (core.cutThrough.isPromised(piece)) Retract.send(core, piece)
      core.cutThrough.reset(piece)
      core.log(`piece ${piece} failed its hash check; fetching it again`)
      // Remember what each peer sent before the bad data is dropped (smartBan.ts).
      core.runThen(
        Effect.flatMap(pieceDigests(core, piece), (digests) => {
          judge(core, core.smartBan.failedPiece(piece, digests, core.now()))
          return Effect.either(core.disk.clearPiece(core.handle, piece))
        }),
        () => {
          core.picker.reset(piece)
          if (!core.closed) for (const c of core.connections) c.fill()
        }
      )
    } else {
      core.fail(`hashing piece ${piece}: ${messageOf(exit.cause)}`)
      core.runThen(Effect.either(core.disk.clearPiece(core.handle, piece)), () => {
        core.picker.reset(piece)
        core.cutThrough.reset(piece)
      })
    }
    for (const c of core.connections) c.fill()
  })
}

const passed = (core: VerifyCore, piece: number): void => {
  core.picker.markHave(piece)
  core.cutThrough.verified(piece)
  core.periodicSync.verified(core.picker.pieceSize(piece), core.now())
  if (core.smartBan.needsDigests(piece))
    core.runThen(pieceDigests(core, piece), (digests) =>
      judge(core, core.smartBan.passedPiece(piece, Exit.isSuccess(digests) ? digests.value : undefined))
    )
  else core.smartBan.passedPiece(piece)
  const have = Wire.encodeHave(piece)
  for (const c of core.connections) {
    if (!c.handshaken) continue
    c.sendSoon(have)
    if (c.amInterested) c.updateInterest()
  }
  core.pieces.unsafeOffer(Take.of(piece))
  if (!core.picker.complete) syncIfDue(core)
  else {
    core.downloading = false
    // Complete means durable: every file's data and every new file's directory entry.
    core.runThen(core.disk.sync(core.handle), (synced) => {
      if (core.closed) return
      if (Exit.isSuccess(synced)) core.markComplete()
      else core.fail(`syncing the completed download: ${messageOf(synced.cause)}`)
    })
    // Two seeds have nothing to trade.
    for (const c of core.connections) if (c.handshaken && c.isSeed) c.close("both sides are seeds")
  }
}

/** One digest per block of `piece` as it is stored now; undefined if it cannot be read. */
const pieceDigests = (core: VerifyCore, piece: number): Effect.Effect<ReadonlyArray<string> | undefined> =>
  core.disk.readOwned(core.handle, piece, 0, core.picker.pieceSize(piece)).pipe(
    Effect.map((read) => {
      const digests = blockDigests(read.views)
      read.release()
      return digests
    }),
    Effect.orElseSucceed(() => undefined)
  )

/** Bans the peers found sending bad data: closed now, refused from here on (address and peer id). */
const judge = (core: VerifyCore, verdicts: ReadonlyArray<Verdict>): void => {
  for (const { peer, reason } of verdicts) {
    core.run(Effect.logWarning(`${core.metainfo.name}: banned peer ${peer}: ${reason}`))
    for (const c of [...core.connections])
      if (c.address === peer) {
        if (c.remotePeerId !== undefined) core.bannedIds.add(Buffer.from(c.remotePeerId).toString("hex"))
        c.close(`banned: ${reason}`)
      }
    // What it sent of pieces not yet hashing is fetched again from others (overwriting it).
    for (const { block, piece } of core.smartBan.blocksOf(peer)) core.unreceive(piece, block * BLOCK)
  }
  if (verdicts.length > 0 && !core.closed) for (const c of core.connections) c.fill()
}
