import path from 'node:path';

import { bundleWorkflowCode, DefaultLogger } from '@temporalio/worker';

/** The module every workflow is exported from; the bundler's entry point. */
export const WORKFLOWS_PATH = path.resolve(__dirname, '..', 'workflows', 'index.ts');

/** Bundles the workflows once, for a process that runs several workers (tests, the all-in-one runner). */
export async function bundleWorkflows(): Promise<{ code: string }> {
  return bundleWorkflowCode({ workflowsPath: WORKFLOWS_PATH, logger: new DefaultLogger('WARN') });
}
