/**
 * Re-records the committed replay histories (test/replay/<workflowType>/<case>.json and the index
 * test/replay/README.md) from the current workflow code: runs test/replay/record.ts in vitest's
 * `replay-record` project, which exists only with REPLAY_RECORD=1 (the recorder uses the workflow-test
 * helpers, which take the Temporal binaries and the prebuilt bundle from vitest's global setup).
 *
 * Re-record only for a new or deliberately versioned path (README, Versioning): a failing replay means
 * running workflows would break, and re-recording would only hide it.
 */
import { spawnSync } from 'node:child_process';
import path from 'node:path';

const root = path.resolve(__dirname, '..');
const vitest = path.join(root, 'node_modules', 'vitest', 'vitest.mjs');
const result = spawnSync(process.execPath, [vitest, 'run', '--project', 'replay-record', ...process.argv.slice(2)], {
  cwd: root,
  stdio: 'inherit',
  env: { ...process.env, REPLAY_RECORD: '1' },
});
if (result.status !== 0) process.exit(result.status ?? 1);
// The index is a Markdown table: let prettier align it (the histories themselves are not formatted).
const prettier = path.join(root, 'node_modules', 'prettier', 'bin', 'prettier.cjs');
const formatted = spawnSync(process.execPath, [prettier, '--write', 'test/replay/README.md'], {
  cwd: root,
  stdio: 'inherit',
});
process.exit(formatted.status ?? 1);
