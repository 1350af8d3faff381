import { defineConfig } from "vitest/config";

export default defineConfig({
  test: {
    include: ["test/**/*.test.ts"],
    // Each suite starts its own Azurite / Dovecot / Graph simulator; forks keep them apart.
    pool: "forks",
    // Two files at a time. Vitest's default is one fewer than the CPUs (1 on the 2-CPU machines
    // this runs on), but an end-to-end file mostly waits on its own world's processes, queues
    // and timers: two at a time keeps `npm test` under issue #23's 15 minutes there.
    maxWorkers: 2,
    testTimeout: 30_000,
    hookTimeout: 60_000,
    reporters: ["default"],
  },
});
