/**
 * Runs once per `vitest run` for the `temporal` project: resolves the Temporal binaries (failing at once
 * with the one-line install hint when they are missing) and bundles the workflow code once, so every
 * test file's workers load the same prebuilt bundle instead of running webpack again.
 */
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';

import type { TestProject } from 'vitest/node' with { 'resolution-mode': 'import' };

import { sdkExecutable, TemporalBinaryNotFound } from '../../src/workers/temporal-binaries';
import { bundleWorkflows } from '../../src/workers/workflow-bundle';

declare module 'vitest' {
  export interface ProvidedContext {
    workflowBundlePath: string;
    temporalCli: string;
    temporalTestServer: string;
  }
}

export default async function setup(project: TestProject): Promise<() => void> {
  let cli, testServer;
  try {
    [cli, testServer] = await Promise.all([sdkExecutable('cli'), sdkExecutable('test-server')]);
  } catch (err) {
    if (err instanceof TemporalBinaryNotFound) {
      // One line, then stop: no test file starts a server it cannot find.
      console.error(err.message);
      process.exit(1);
    }
    throw err;
  }
  const dir = mkdtempSync(path.join(tmpdir(), 'conductor-bundle-'));
  const bundlePath = path.join(dir, 'workflow-bundle.js');
  const { code } = await bundleWorkflows();
  writeFileSync(bundlePath, code);
  project.provide('workflowBundlePath', bundlePath);
  project.provide('temporalCli', cli.type === 'existing-path' ? cli.path : '');
  project.provide('temporalTestServer', testServer.type === 'existing-path' ? testServer.path : '');
  return () => rmSync(dir, { recursive: true, force: true });
}
