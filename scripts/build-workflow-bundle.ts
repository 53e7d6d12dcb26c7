/**
 * Bundles the workflow code with the SDK's bundler. `--check` only proves it bundles (the bundler rejects
 * Node built-ins and activity/client/worker imports in workflow code); `--out FILE` writes the bundle
 * for workers to load with `workflowBundle: { codePath }`.
 */
import { writeFileSync } from 'node:fs';

import { bundleWorkflowCode } from '@temporalio/worker';

import { WORKFLOWS_PATH } from '../src/workers/workflow-bundle';

async function main(): Promise<void> {
  const args = process.argv.slice(2);
  const outIndex = args.indexOf('--out');
  const { code } = await bundleWorkflowCode({ workflowsPath: WORKFLOWS_PATH, logger: undefined });
  if (outIndex >= 0) {
    const out = args[outIndex + 1];
    if (!out) throw new Error('--out needs a file name');
    writeFileSync(out, code);
    console.log(`workflow bundle written to ${out} (${(code.length / 1024).toFixed(0)} KiB)`);
  } else {
    console.log(`workflow code bundles cleanly (${(code.length / 1024).toFixed(0)} KiB)`);
  }
}

main().catch((err: unknown) => {
  console.error(err instanceof Error ? err.message : err);
  process.exit(1);
});
