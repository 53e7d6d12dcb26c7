/**
 * Bundles the workflow code with the SDK's bundler (the bundler rejects Node built-ins and
 * activity/client/worker imports in workflow code). By default writes dist/workflow-bundle.js, the
 * prebuilt bundle production workers load (`npm run build`); `--check` only proves it bundles;
 * `--out FILE` writes it elsewhere.
 */
import { mkdirSync, writeFileSync } from 'node:fs';
import path from 'node:path';

import { bundleWorkflowCode } from '@temporalio/worker';

import { PREBUILT_BUNDLE_PATH, WORKFLOW_BUNDLE_OPTIONS } from '../src/workers/workflow-bundle';

async function main(): Promise<void> {
  const args = process.argv.slice(2);
  const outIndex = args.indexOf('--out');
  const check = args.includes('--check');
  const { code } = await bundleWorkflowCode({ ...WORKFLOW_BUNDLE_OPTIONS, logger: undefined });
  const size = `${(code.length / 1024).toFixed(0)} KiB`;
  if (check) {
    console.log(`workflow code bundles cleanly (${size})`);
    return;
  }
  const out = outIndex >= 0 ? args[outIndex + 1] : PREBUILT_BUNDLE_PATH;
  if (!out) throw new Error('--out needs a file name');
  mkdirSync(path.dirname(out), { recursive: true });
  writeFileSync(out, code);
  console.log(`workflow bundle written to ${path.relative(process.cwd(), out) || out} (${size})`);
}

main().catch((err: unknown) => {
  console.error(err instanceof Error ? err.message : err);
  process.exit(1);
});
