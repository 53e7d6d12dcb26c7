/**
 * The conductor worker's workflow code. Development (tsx) bundles the TypeScript sources when the worker
 * starts; production loads the bundle `npm run build` wrote (dist/workflow-bundle.js): with
 * NODE_ENV=production it must be there, and built code (dist/) uses it whenever it is.
 */
import { existsSync } from 'node:fs';
import path from 'node:path';

import type { BundleOptions } from '@temporalio/worker';
import { bundleWorkflowCode, DefaultLogger } from '@temporalio/worker';

import { PROJECT_ROOT, RUNNING_BUILT_CODE } from './temporal-binaries';

/** Webpack's configuration, as the SDK's bundler hands it to its hook. */
type Configuration = Parameters<NonNullable<BundleOptions['webpackConfigHook']>>[0];

/** The module every workflow is exported from; the bundler's entry point. */
export const WORKFLOWS_PATH = path.join(PROJECT_ROOT, 'src', 'workflows', 'index.ts');

/** Where `npm run build` (scripts/build-workflow-bundle.ts) writes the prebuilt bundle. */
export const PREBUILT_BUNDLE_PATH = path.join(PROJECT_ROOT, 'dist', 'workflow-bundle.js');

/**
 * The workflows' interceptor modules: domain errors thrown by workflow code cross the wire typed
 * (src/workflows/lib/interceptors.ts). Bundled in, as every worker runs a bundle (the SDK ignores
 * WorkerOptions.interceptors.workflowModules when a workflowBundle is given).
 */
export const WORKFLOW_INTERCEPTOR_MODULES = [path.join(PROJECT_ROOT, 'src', 'workflows', 'lib', 'interceptors.ts')];

/**
 * What every bundle of the workflows is made with (workers, the prebuilt bundle, tests, replay): the
 * workflows, their interceptor (above) and the preloaded modules. The
 * preloaded module is evaluated once per worker thread and shared by every workflow run on it (the SDK's
 * `preloadModules`, which deep-freezes what it exports), instead of evaluated again for each run: zod's
 * own module (its classes, checks and locales), which was a tenth of the conductor's workflow thread
 * under load. Schemas are not shared: zod builds parts of a schema on first use, which a frozen schema
 * cannot take.
 */
export const WORKFLOW_BUNDLE_OPTIONS = {
  workflowsPath: WORKFLOWS_PATH,
  workflowInterceptorModules: WORKFLOW_INTERCEPTOR_MODULES,
  preloadModules: [path.join(PROJECT_ROOT, 'src', 'workflows', 'lib', 'preload.ts')],
  webpackConfigHook: withScopeHoisting,
};

/**
 * Webpack's scope hoisting (`optimization.concatenateModules`, on in its production mode, off in the
 * development mode the SDK bundles in): our ES modules are joined into one scope, so each workflow run,
 * which evaluates the bundle's modules again (the SDK keeps module state per run), defines a few dozen
 * modules instead of some two hundred, each with its export getters, and reads imports as plain
 * bindings. The code, its order of evaluation and its source map are otherwise the same.
 */
export function withScopeHoisting(config: Configuration): Configuration {
  return { ...config, optimization: { ...config.optimization, concatenateModules: true } };
}

/** Bundles the workflows once, for a process that runs several workers (tests, the all-in-one runner). */
export async function bundleWorkflows(): Promise<{ code: string }> {
  return bundleWorkflowCode({ ...WORKFLOW_BUNDLE_OPTIONS, logger: new DefaultLogger('WARN') });
}

/**
 * The worker's `workflowBundle`: the file WORKFLOW_BUNDLE_PATH names (bundled from the same sources, by the
 * tests' global setup), else the prebuilt file (see the header), else the sources bundled now.
 */
export async function workflowBundle(
  production: boolean,
  bundlePath?: string
): Promise<{ codePath: string } | { code: string }> {
  if (bundlePath) {
    if (!existsSync(bundlePath)) throw new Error(`WORKFLOW_BUNDLE_PATH: no workflow bundle at ${bundlePath}`);
    return { codePath: bundlePath };
  }
  if (production || RUNNING_BUILT_CODE) {
    if (existsSync(PREBUILT_BUNDLE_PATH)) return { codePath: PREBUILT_BUNDLE_PATH };
    if (production)
      throw new Error(
        `NODE_ENV=production needs the prebuilt workflow bundle ${PREBUILT_BUNDLE_PATH}: run npm run build`
      );
  }
  return bundleWorkflows();
}
