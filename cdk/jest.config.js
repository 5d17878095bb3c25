/** Tests are TypeScript, transpiled by ts-jest; tsconfig has isolatedModules, so ts-jest transpiles each file without type checking (`tsc --noEmit` checks types). */
module.exports = {
  testEnvironment: 'node',
  roots: ['<rootDir>/test'],
  testMatch: ['**/*.test.ts'],
  transform: {
    '^.+\\.tsx?$': 'ts-jest',
  },
  testTimeout: 60000,
};
