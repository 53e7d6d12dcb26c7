// Type-aware lint. The workflow sandbox rules follow samples-typescript's shared config:
// workflow code may import only @temporalio/workflow, pure domain code, shared wiring and zod.
import js from '@eslint/js';
import prettier from 'eslint-config-prettier';
import { createTypeScriptImportResolver } from 'eslint-import-resolver-typescript';
import importX from 'eslint-plugin-import-x';
import tseslint from 'typescript-eslint';

const NODE_BUILTINS = [
  'fs',
  'fs/promises',
  'path',
  'os',
  'crypto',
  'child_process',
  'http',
  'https',
  'net',
  'dgram',
  'dns',
  'tls',
  'stream',
  'worker_threads',
  'cluster',
  'process',
  'readline',
  'zlib',
  'events',
  'timers',
  'perf_hooks',
  'v8',
  'vm',
];

/**
 * The layers point one way: domain ← scheduler/shared ← store/compute ← activities ← workflows ←
 * workers/cli. Each zone lists what its files may not import.
 */
const LAYERS = [
  {
    target: 'src/domain',
    from: ['shared', 'scheduler', 'store', 'compute', 'activities', 'workflows', 'workers', 'cli', 'api'],
  },
  { target: 'src/shared', from: ['store', 'compute', 'activities', 'workflows', 'workers', 'cli', 'api'] },
  { target: 'src/scheduler', from: ['store', 'compute', 'activities', 'workflows', 'workers', 'cli', 'api'] },
  { target: 'src/store', from: ['compute', 'activities', 'workflows', 'workers', 'cli', 'api'] },
  { target: 'src/compute', from: ['store', 'activities', 'workflows', 'workers', 'cli', 'api'] },
  { target: 'src/activities', from: ['workflows', 'workers', 'cli', 'api'] },
  { target: 'src/workflows', from: ['workers', 'cli', 'api'] },
];

export default tseslint.config(
  { ignores: ['node_modules/**', '.tools/**', 'data/**', 'coverage/**', 'test-artifacts/**', 'dist/**'] },
  js.configs.recommended,
  ...tseslint.configs.recommendedTypeChecked,
  {
    languageOptions: {
      parserOptions: { projectService: { allowDefaultProject: ['*.mjs'] }, tsconfigRootDir: import.meta.dirname },
    },
    rules: {
      '@typescript-eslint/no-floating-promises': 'error',
      '@typescript-eslint/no-misused-promises': 'error',
      '@typescript-eslint/consistent-type-imports': 'error',
      '@typescript-eslint/no-unused-vars': ['error', { argsIgnorePattern: '^_', varsIgnorePattern: '^_' }],
      eqeqeq: ['error', 'always', { null: 'ignore' }],
      'no-console': ['error', { allow: ['warn', 'error'] }],
    },
  },
  {
    files: ['**/*.ts'],
    plugins: { 'import-x': importX },
    // Without .ts in the extensions and parsers, import-x never follows a TypeScript import (no-cycle is inert).
    settings: {
      'import-x/extensions': ['.ts', '.mts', '.js', '.mjs'],
      'import-x/parsers': { '@typescript-eslint/parser': ['.ts', '.mts'] },
      'import-x/resolver-next': [createTypeScriptImportResolver({ project: './tsconfig.json' })],
    },
    rules: {
      'import-x/no-cycle': ['error', { ignoreExternal: true }],
      'import-x/no-restricted-paths': [
        'error',
        {
          zones: LAYERS.flatMap(({ target, from }) =>
            from.map((layer) => ({
              target: `./${target}`,
              from: `./src/${layer}`,
              message: `${target} sits below src/${layer}: layers point one way (domain ← scheduler/shared ← store/compute ← activities ← workflows ← workers/cli).`,
            }))
          ),
        },
      ],
    },
  },
  {
    files: ['src/workflows/**/*.ts', 'src/domain/**/*.ts', 'src/shared/**/*.ts'],
    rules: {
      'no-restricted-globals': ['error', { name: 'process', message: 'Workflow and domain code never read env.' }],
      '@typescript-eslint/no-restricted-imports': [
        'error',
        {
          paths: NODE_BUILTINS.flatMap((name) => [
            { name, message: 'Workflow-reachable code may not import Node built-ins.' },
            { name: `node:${name}`, message: 'Workflow-reachable code may not import Node built-ins.' },
          ]),
          patterns: [
            {
              group: ['@temporalio/activity', '@temporalio/client', '@temporalio/worker', '@temporalio/testing'],
              message: 'Workflow code imports only @temporalio/workflow.',
            },
            {
              group: ['**/activities/**', '**/activities'],
              allowTypeImports: true,
              message: 'Workflows import only the types of activities.',
            },
            {
              group: [
                '**/workers/**',
                '**/store/**',
                '**/compute/**',
                '**/scheduler/**',
                'kysely',
                'better-sqlite3',
                'pg',
              ],
              message: 'Workflow code never touches stores, workers or the scheduler engine.',
            },
          ],
        },
      ],
    },
  },
  {
    files: ['scripts/**/*.ts', 'src/workers/**/*.ts', 'src/cli/**/*.ts', 'test/**/*.ts', 'bench/**/*.ts'],
    rules: { 'no-console': 'off' },
  },
  prettier
);
