import { defineConfig } from "vitest/config"

// Shared by every package's vitest.config.ts (mergeConfig(shared, {})).
export default defineConfig({
  test: {
    include: ["test/**/*.test.ts"],
    // A hung test must never hold CI: everything is bounded in time.
    testTimeout: 60_000,
    hookTimeout: 60_000
  }
})
