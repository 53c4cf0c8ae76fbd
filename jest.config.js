/** @type {import('jest').Config} */
module.exports = {
  testEnvironment: 'node',
  roots: ['<rootDir>/test'],
  testMatch: ['**/*.test.ts'],
  transform: { '^.+\\.ts$': ['ts-jest', {}] },
  // Sources import each other as `./x.js` (node16 modules; orders.module imports the PGlite
  // adapter that way): jest resolves those to the `.ts` file.
  moduleNameMapper: { '^(\\.{1,2}/.*)\\.js$': '$1' },
  // A PGlite data directory initialised once per run, copied by each suite that opens PGlite.
  globalSetup: '<rootDir>/test/helpers/jest.global-setup.ts',
  globalTeardown: '<rootDir>/test/helpers/jest.global-teardown.ts',
  // Whole-process drills spawn the service and wait for real signals and budgets.
  testTimeout: 30000,
  verbose: true,
};
