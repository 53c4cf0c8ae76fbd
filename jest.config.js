/** @type {import('jest').Config} */
module.exports = {
  testEnvironment: 'node',
  roots: ['<rootDir>/test'],
  testMatch: ['**/*.test.ts'],
  transform: { '^.+\\.ts$': ['ts-jest', {}] },
  // Whole-process drills spawn the service and wait for real signals and budgets.
  testTimeout: 30000,
  verbose: true,
};
