// ESLint flat config: typescript-eslint's type-aware rules over every TypeScript file.
import js from '@eslint/js';
import tseslint from 'typescript-eslint';

/** Files matching `files` may not import anything matching `forbidden`. */
function layer(files, forbidden, why) {
  return [
    {
      files: [files.endsWith('.ts') ? files : `${files}/*.ts`],
      rules: {
        'no-restricted-imports': [
          'error',
          {
            patterns: [
              { group: forbidden, message: `Import direction: ${why}.` },
              {
                group: ['router/lib/*', 'express/lib/*'],
                message: 'Express internals only in src/http/stable-shapes.ts, behind its test.',
              },
            ],
          },
        ],
      },
    },
  ];
}

export default tseslint.config(
  { ignores: ['dist/', 'dist-test/', 'coverage/', 'data/', 'node_modules/'] },
  js.configs.recommended,
  ...tseslint.configs.recommendedTypeChecked,
  {
    languageOptions: {
      parserOptions: { projectService: true, tsconfigRootDir: import.meta.dirname },
    },
    rules: {
      '@typescript-eslint/no-unused-vars': ['error', { argsIgnorePattern: '^_' }],
      '@typescript-eslint/consistent-type-imports': 'error',
      '@typescript-eslint/no-floating-promises': 'error',
      'no-restricted-properties': [
        'error',
        {
          object: 'process',
          property: 'env',
          message: 'Only src/config reads the environment: take values from the typed config.',
        },
      ],
    },
  },
  {
    files: ['src/config/**', 'test/**', 'scripts/**', 'bench/**'],
    rules: { 'no-restricted-properties': 'off' },
  },
  // The house (../shared/STYLE.md): imports point one way, config -> runtime -> request path ->
  // telemetry, with the chart as the ground floor and the domain plugged in through
  // src/contracts.ts. Each folder may not reach up or sideways.
  ...layer('machines/**', ['**/src/**'], 'the chart is pure: it imports nothing from src/'),
  ...layer(
    'src/errors/**',
    ['**/config/**', '**/runtime/**', '**/http/**', '**/orders/**', '**/telemetry/**'],
    'the error catalogue is the floor of src/: it imports nothing else',
  ),
  ...layer(
    'src/config/**',
    ['**/runtime/**', '**/http/**', '**/orders/**', '**/resilience/**'],
    'config is read first and depends on nothing but the logger',
  ),
  ...layer(
    'src/telemetry/**',
    ['**/runtime/**', '**/http/**', '**/orders/**', '**/resilience/**', 'express'],
    'telemetry is the end of the flow: requests and messages open scopes here, not the reverse',
  ),
  ...layer(
    'src/resilience/**',
    ['**/runtime/**', '**/http/**', '**/orders/**'],
    'the resilience policy wraps dependency calls; it knows nothing of who calls',
  ),
  ...layer(
    'src/auth/**',
    ['**/runtime/**', '**/http/**', '**/orders/**', '**/config/**', 'express'],
    'authentication verifies tokens against keys; it knows nothing of HTTP, config or the domain',
  ),
  ...layer(
    'src/http/**',
    ['**/runtime/**', '**/orders/**'],
    'the request path does not reach back into the runtime or the domain (use src/contracts.ts)',
  ),
  ...layer(
    'src/{orders,broker}/**',
    ['**/runtime/**'],
    'the domain plugs in through src/contracts.ts and never imports the runtime',
  ),
  ...layer(
    'src/orders/{domain,use-cases,data}/**',
    ['**/runtime/**', '**/http/**', 'express'],
    'the domain, its use cases and data access know nothing of HTTP or Express',
  ),
  ...layer(
    'src/contracts.ts',
    ['**/runtime/**', '**/http/**', '**/orders/**'],
    'the contracts sit below both the runtime and the domain',
  ),
  {
    files: ['**/*.js', '**/*.mjs'],
    ...tseslint.configs.disableTypeChecked,
  },
  {
    files: ['**/*.js'],
    languageOptions: {
      sourceType: 'commonjs',
      globals: {
        require: 'readonly',
        module: 'writable',
        __dirname: 'readonly',
        process: 'readonly',
      },
    },
    rules: { '@typescript-eslint/no-require-imports': 'off' },
  },
  // The lifecycle page's script runs in the browser (served by the ops listener as it is).
  {
    files: ['src/http/lifecycle-page/client/**/*.js'],
    languageOptions: {
      sourceType: 'script',
      globals: {
        document: 'readonly',
        EventSource: 'readonly',
        setInterval: 'readonly',
      },
    },
  },
);
