import { defineWorkspace } from "vitest/config"

export default defineWorkspace([
  "packages/*/vitest.config.ts",
  // Repository-wide checks (module sizes, import cycles).
  { test: { name: "repo", include: ["test/**/*.test.ts"], testTimeout: 60_000 } }
])
