/**
 * Test environments built from the resolved binaries (never the SDK's download), and in-process workers
 * on the project's real task queues: the conductor queue, the scheduler queue, one queue per compute host.
 */
import { status } from '@grpc/grpc-js';
import type { WorkflowHandle } from '@temporalio/client';
import { temporal } from '@temporalio/proto';
import { TestWorkflowEnvironment } from '@temporalio/testing';
import { DefaultLogger, makeTelemetryFilterString, Runtime, Worker } from '@temporalio/worker';
import type { WorkerOptions } from '@temporalio/worker';
import { expect, inject, vi } from 'vitest';

import { CONDUCTOR_SEARCH_ATTRIBUTES } from '../../src/shared/search-attributes';

let runtimeInstalled = false;
/** Quiet the SDK in tests: only errors show (workers without workflows warn by design). */
export function installTestRuntime(): void {
  if (runtimeInstalled) return;
  runtimeInstalled = true;
  Runtime.install({
    logger: new DefaultLogger('ERROR'),
    telemetryOptions: { logging: { filter: makeTelemetryFilterString({ core: 'ERROR' }), forward: {} } },
  });
}

/** The workflows each environment's client started since the last report (reportStillRunning). */
const startedBy = new WeakMap<TestWorkflowEnvironment, Set<string>>();

/** A time-skipping environment (the Java test server) with the conductor's search attributes registered. */
export async function createTimeSkippingEnv(): Promise<TestWorkflowEnvironment> {
  installTestRuntime();
  const started = new Set<string>();
  const env = await TestWorkflowEnvironment.createTimeSkipping({
    server: { executable: { type: 'existing-path', path: inject('temporalTestServer') } },
    client: {
      interceptors: {
        workflow: [
          {
            start: (input, next) => {
              started.add(input.options.workflowId);
              return next(input);
            },
          },
        ],
      },
    },
  });
  startedBy.set(env, started);
  try {
    await env.connection.operatorService.addSearchAttributes({
      namespace: env.namespace ?? 'default',
      searchAttributes: Object.fromEntries(
        CONDUCTOR_SEARCH_ATTRIBUTES.map((k) => [
          k.name,
          temporal.api.enums.v1.IndexedValueType.INDEXED_VALUE_TYPE_KEYWORD,
        ])
      ),
    });
  } catch (err) {
    // Registration is global to the server; a key that already exists is fine.
    if ((err as { code?: number }).code !== status.ALREADY_EXISTS) throw err;
  }
  return env;
}

/**
 * A dev-server environment (`temporal server start-dev`, in memory) with real visibility and search
 * attributes; with `uiPort`, its Web UI is served there.
 */
export async function createDevServerEnv(options: { uiPort?: number } = {}): Promise<TestWorkflowEnvironment> {
  installTestRuntime();
  return TestWorkflowEnvironment.createLocal({
    server: {
      executable: { type: 'existing-path', path: inject('temporalCli') },
      searchAttributes: [...CONDUCTOR_SEARCH_ATTRIBUTES],
      ...(options.uiPort ? { ui: true, uiPort: options.uiPort } : {}),
      extraArgs: ['--ui-disable-news-fetch', ...(options.uiPort ? [] : ['--headless'])],
    },
  });
}

/** Worker options for the prebuilt bundle made once per run by the global setup. */
export function workflowBundleOption(): Pick<WorkerOptions, 'workflowBundle'> {
  return { workflowBundle: { codePath: inject('workflowBundlePath') } };
}

/** Creates the given workers, runs `fn` while they poll, then shuts them all down. */
export async function withWorkers<T>(
  env: TestWorkflowEnvironment,
  specs: Array<Omit<WorkerOptions, 'connection'>>,
  fn: () => Promise<T>
): Promise<T> {
  const workers = await Promise.all(
    specs.map((spec) => Worker.create({ connection: env.nativeConnection, namespace: env.namespace, ...spec }))
  );
  const [first, ...rest] = workers;
  if (!first) return fn();
  // Nest runUntil so every worker polls while fn runs and each shuts down cleanly after.
  const run = rest.reduce<() => Promise<T>>((inner, w) => () => w.runUntil(inner()), fn);
  return first.runUntil(run());
}

/**
 * For a failed test: every workflow the environment's client started since the last call that is still
 * running, with its pending activities and children and its last events, printed to stderr; a test
 * that timed out waiting on a workflow says where that workflow stood. Forgets the list either way.
 */
export async function reportStillRunning(env: TestWorkflowEnvironment, print: boolean): Promise<void> {
  const started = startedBy.get(env);
  if (!started) return;
  const ids = [...started];
  started.clear();
  if (!print) return;
  const EventType = temporal.api.enums.v1.EventType;
  for (const id of ids) {
    try {
      const handle = env.client.workflow.getHandle(id);
      const described = await handle.describe();
      if (described.status.name !== 'RUNNING') continue;
      const { raw } = described;
      const pending = (raw.pendingActivities ?? []).map(
        (a) =>
          `${a.activityType?.name ?? '?'} (attempt ${a.attempt ?? 0}, ${a.lastStartedTime ? 'started' : 'not started'}` +
          `${a.lastFailure?.message ? `, last failure: ${a.lastFailure.message}` : ''})`
      );
      const children = (raw.pendingChildren ?? []).map((c) => `${c.workflowTypeName ?? '?'} ${c.workflowId ?? ''}`);
      const events = ((await handle.fetchHistory()).events ?? []).slice(-15).map((e) => {
        const activity = e.activityTaskScheduledEventAttributes?.activityType?.name;
        const type = EventType[e.eventType ?? 0]?.replace(/^EVENT_TYPE_/, '') ?? String(e.eventType);
        return `${String(e.eventId)} ${type}${activity ? ` ${activity}` : ''}`;
      });
      console.error(
        `still running after a failed test: ${described.type} ${id}\n` +
          `  pending activities: ${pending.join('; ') || 'none'}\n` +
          `  pending children: ${children.join('; ') || 'none'}\n` +
          `  last events: ${events.join(', ')}`
      );
    } catch (err) {
      console.error(`still running after a failed test: ${id}: could not describe it: ${String(err)}`);
    }
  }
}

/** Whether the workflow has an activity of type `name` pending that a worker has taken (started). */
export async function activityStarted(handle: WorkflowHandle, name: string): Promise<boolean> {
  const pending = (await handle.describe()).raw.pendingActivities ?? [];
  return pending.some((a) => a.activityType?.name === name && a.lastStartedTime != null);
}

/** Resolves once a live migration's memory copy runs (its liveMigration activity started). */
export async function liveCopyRunning(handle: WorkflowHandle): Promise<void> {
  await vi.waitFor(async () => expect(await activityStarted(handle, 'liveMigration')).toBe(true), {
    timeout: 20_000,
    interval: 50,
  });
}
