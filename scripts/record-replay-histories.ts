/**
 * Records the replay histories (test/replay/<workflowType>/<case>.json and the index
 * test/replay/README.md) from the current workflow code: runs test/replay/record.ts in vitest's
 * `replay-record` project, which exists only with REPLAY_RECORD=1 (the recorder uses the workflow-test
 * helpers, which take the Temporal binaries and the prebuilt bundle from vitest's global setup).
 *
 * `npm run replay:record` writes the cases that have no history yet and keeps the committed ones (the
 * way to add a new, versioned path); `npm run replay:record -- --overwrite` clears and re-records all.
 * Never overwrite to make a failing replay pass (README, Versioning): the failure is what running
 * workflows would hit.
 */
import { spawnSync } from 'node:child_process';
import path from 'node:path';

const root = path.resolve(__dirname, '..');
const vitest = path.join(root, 'node_modules', 'vitest', 'vitest.mjs');
const args = process.argv.slice(2);
const overwrite = args.includes('--overwrite');
const vitestArgs = ['run', '--project', 'replay-record', '--reporter', 'default'];
const result = spawnSync(process.execPath, [vitest, ...vitestArgs, ...args.filter((a) => a !== '--overwrite')], {
  cwd: root,
  stdio: 'inherit',
  env: { ...process.env, REPLAY_RECORD: '1', ...(overwrite ? { REPLAY_OVERWRITE: '1' } : {}) },
});
if (result.status !== 0) process.exit(result.status ?? 1);
// The index is a Markdown table: let prettier align it (the histories themselves are not formatted).
const prettier = path.join(root, 'node_modules', 'prettier', 'bin', 'prettier.cjs');
const formatted = spawnSync(process.execPath, [prettier, '--write', 'test/replay/README.md'], {
  cwd: root,
  stdio: 'inherit',
});
process.exit(formatted.status ?? 1);
