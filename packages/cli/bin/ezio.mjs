#!/usr/bin/env node
// The installed `ezio` command: runs the TypeScript sources through tsx (a dependency of this
// package), so `pnpm exec ezio` and `npx ezio` behave as `pnpm ezio` does from a checkout.
import { register } from "tsx/esm/api"

register()
await import("../src/bin.ts")
