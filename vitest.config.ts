import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    include: ['test/**/*.test.ts'],
    // One PostgreSQL server for the run; each test file gets its own database cloned from a
    // migrated template (see test/global-setup.ts and test/helpers).
    globalSetup: ['test/global-setup.ts'],
    // The app defaults to production (and refuses the demo keys); the suite runs as `test`. Files
    // that try production or development set APP_ENV themselves.
    env: { APP_ENV: 'test' },
    // Files run in separate processes: each has its own module-level pool and app registrations.
    pool: 'forks',
    testTimeout: 30_000,
    hookTimeout: 60_000,
    // Two cores: more parallel files only queue on the CPU and make timing-sensitive tests flaky.
    maxWorkers: 2,
  },
});
