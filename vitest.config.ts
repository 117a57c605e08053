import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    include: ['test/**/*.test.ts'],
    testTimeout: 20_000,
    hookTimeout: 20_000,
    // Integration tests bind real sockets and spawn processes; files run in parallel workers,
    // each test binds port 0, so nothing collides.
    pool: 'forks',
  },
});
