// Human-readable sizes and rates, and size options like "256MiB" (the pool's one parser).
import { Size } from "@ezio/pool"
import * as Effect from "effect/Effect"
import * as Either from "effect/Either"
import { UsageError } from "./errors.js"

export const parseSize = (value: string, option: string): Effect.Effect<number, UsageError> =>
  Either.match(Size.parse(value), {
    onLeft: (error) => Effect.fail(new UsageError({ option, detail: error.message })),
    onRight: Effect.succeed
  })

export const formatBytes = Size.format

export const formatRate = (bytesPerSecond: number): string => `${formatBytes(bytesPerSecond)}/s`
