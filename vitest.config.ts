import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    include: ['test/**/*.test.ts'],
    testTimeout: 20_000,
    hookTimeout: 20_000,
    pool: 'forks',
    // Integration and end-to-end tests run real servers, Redis and load on a 2-core machine: one
    // file at a time keeps their timing honest (ports are all 0, so they could run in parallel).
    fileParallelism: false,
  },
});
