/**
 * `make cluster` end to end: PostgreSQL, the four Temporal services as their own processes (4 history
 * shards, SQL visibility), mTLS, the Web UI, two conductors, two schedulers and one compute process per
 * host, all started by src/workers/cluster.ts on free loopback ports. Every operation of the first test
 * goes through the stock `temporal` CLI with the profile the cluster wrote (TLS client certificate);
 * the burst kills a conductor and a scheduler replica with kill -9 and every build completes on the
 * replicas left, the store (PostgreSQL) and the hosts consistent after. Then the cluster's own services
 * die mid-burst, one after the other (history, matching, the frontend, PostgreSQL's postmaster, each by
 * kill -9): the supervisor starts each again and every build ends active or failed with a typed fault.
 */
import { execFile } from 'node:child_process';
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { promisify } from 'node:util';

import { Connection } from '@temporalio/client';
import { afterAll, afterEach, beforeAll, describe, expect, inject, it, vi } from 'vitest';

import { HostSpecSchema } from '../../src/domain/fleet';
import { openStore } from '../../src/store/db';
import { createNotificationOutbox } from '../../src/store/notification-outbox';
import { FailureType } from '../../src/domain/errors';
import { createInstanceRepository } from '../../src/store/instances';
import { assertConsistent, figures, outcomes, reattach, startBuilds, waitForTaskState } from '../faults/harness';
import { isAlive } from '../faults/launcher-stack';
import { assertNoStoreCredentials, computeWorkerPids, storeCredentialsOf } from '../helpers/process-env';
import { ClusterStack } from './cluster-stack';

const run = promisify(execFile);

const HOSTS = HostSpecSchema.array().parse([
  { name: 'cl-1', availabilityZone: 'az1', vcpus: 16, memoryMb: 65536, diskGb: 1000 },
  { name: 'cl-2', availabilityZone: 'az1', vcpus: 16, memoryMb: 32768, diskGb: 1000 },
  { name: 'cl-3', availabilityZone: 'az1', vcpus: 16, memoryMb: 32768, diskGb: 1000 },
]);

interface Executed<T> {
  status: string;
  result: T;
}
interface Instance {
  instanceId: string;
  host: string;
  vmState: string;
  flavor: string;
}

describe('make cluster: PostgreSQL, Temporal services, mTLS, replicated workers', () => {
  const stack = new ClusterStack(HOSTS, 2);
  // A killed replica is restarted after the longest backoff (30 s); the burst keeps it down meanwhile.
  beforeAll(() => stack.startCluster({ LAUNCHER_BACKOFF_SECONDS: '60' }), 300_000);
  afterAll(() => stack.dispose());
  // A failure shows what the cluster printed (its services, workers and supervisor), for a CI log.
  afterEach(({ task }) => {
    if (task.result?.state === 'fail')
      console.log(`[cluster] after the failure of "${task.name}":\n${stack.logs(300)}`);
  });

  it('refuses a client without a certificate, with or without TLS', async () => {
    console.log(`[cluster] started in ${stack.startSeconds.toFixed(1)} s`);
    const ca = readFileSync(path.join(stack.dataDir, 'tls', 'ca.pem'));
    const tlsNoCert = Connection.connect({
      address: stack.address,
      tls: { serverRootCACertificate: ca, serverNameOverride: 'frontend.cluster.local' },
      connectTimeout: 5_000,
    }).then((c) => c.workflowService.getSystemInfo({}));
    await expect(tlsNoCert).rejects.toThrow();
    const plain = Connection.connect({ address: stack.address, connectTimeout: 5_000 }).then((c) =>
      c.workflowService.getSystemInfo({})
    );
    await expect(plain).rejects.toThrow();
    // The stock CLI with TLS and the CA but no client certificate is refused too.
    await expect(
      run(
        inject('temporalCli'),
        [
          'workflow',
          'list',
          '--address',
          stack.address,
          '--tls',
          '--tls-ca-path',
          path.join(stack.dataDir, 'tls', 'ca.pem'),
          '--tls-server-name',
          'frontend.cluster.local',
        ],
        { env: { ...process.env, TEMPORAL_CONFIG_FILE: path.join(stack.dir, 'none.toml') } }
      )
    ).rejects.toThrow();
    // The same address with the profile's certificate answers.
    await expect(stack.connection!.workflowService.getSystemInfo({})).resolves.toBeDefined();
  });

  it('builds (one rescheduled after a spawn fault), resizes with confirm, stops, and lists by each search attribute, all through the stock CLI over mTLS', async () => {
    const build = (name: string) =>
      stack.temporal(
        'workflow',
        'execute',
        '--type',
        'buildInstance',
        '--task-queue',
        'conductor',
        '--workflow-id',
        `build-${name}`,
        '--input',
        JSON.stringify({ name, flavor: 'm1.small', image: 'cirros' })
      ) as Promise<Executed<Instance>>;
    // On an empty fleet the largest host, cl-1, is the first choice: its spawn fails once, the build
    // is rescheduled to another host.
    stack.writeFaults('cl-1', { spawn: { failNext: 1 } });
    const first = await build('cl-vm1');
    expect(first.status).toBe('COMPLETED');
    expect(first.result.vmState).toBe('active');
    expect(first.result.host).not.toBe('cl-1');
    const progress = (await stack.temporal(
      'workflow',
      'query',
      '--workflow-id',
      'build-cl-vm1',
      '--name',
      'getProgress'
    )) as {
      queryResult: Array<{ attempt: number; hostsTried: string[] }>;
    };
    expect(progress.queryResult[0]).toMatchObject({ attempt: 2 });
    expect(progress.queryResult[0]?.hostsTried).toEqual(['cl-1', first.result.host]);

    const second = await build('cl-vm2');
    expect(second.status).toBe('COMPLETED');
    expect(second.result.vmState).toBe('active');

    // Stored encrypted: without the codec the stock CLI shows the input as ciphertext (the codec's
    // encoding and key id in its metadata, no plain field); through the codec server, the plain input.
    type Shown = Array<{
      workflowExecutionStartedEventAttributes?: {
        input?: { payloads?: Array<{ metadata?: Record<string, string>; data?: string }> };
      };
    }>;
    const startedInput = async (show: (...a: string[]) => Promise<unknown>) => {
      const out = (await show('workflow', 'show', '--workflow-id', 'build-cl-vm1')) as { events?: Shown } | Shown;
      const events = Array.isArray(out) ? out : (out.events ?? []);
      return events[0]?.workflowExecutionStartedEventAttributes?.input?.payloads?.[0];
    };
    const stored = await startedInput((...a) => stack.temporalWithoutCodec(...a));
    const b64 = (v: string | undefined) => Buffer.from(v ?? '', 'base64').toString('utf8');
    expect(b64(stored?.metadata?.encoding)).toBe('binary/encrypted');
    expect(b64(stored?.metadata?.['encryption-key-id'])).toMatch(/^k\d{8}$/);
    expect(b64(stored?.data)).not.toContain('cl-vm1');
    const decoded = await startedInput((...a) => stack.temporal(...a));
    expect(b64(decoded?.metadata?.encoding)).toBe('json/plain');
    expect(JSON.parse(b64(decoded?.data))).toMatchObject({ name: 'cl-vm1', flavor: 'm1.small' });

    const id = first.result.instanceId;
    await stack.temporal(
      'workflow',
      'start',
      '--type',
      'resizeMigrate',
      '--task-queue',
      'conductor',
      '--workflow-id',
      `resize-${id}`,
      '--input',
      JSON.stringify({ instanceId: id, flavor: 'm1.medium' })
    );
    // The validator rejects the confirm until the instance is resized (VERIFY_RESIZE).
    await vi.waitFor(
      () => stack.temporal('workflow', 'update', 'execute', '--workflow-id', `resize-${id}`, '--name', 'confirmResize'),
      { timeout: 90_000, interval: 1_000 }
    );
    const resized = (await stack.temporal('workflow', 'result', '--workflow-id', `resize-${id}`)) as Executed<Instance>;
    expect(resized.result).toMatchObject({ vmState: 'active', flavor: 'm1.medium' });

    const stopped = (await stack.temporal(
      'workflow',
      'execute',
      '--type',
      'stop',
      '--task-queue',
      'conductor',
      '--workflow-id',
      `stop-${id}-1`,
      '--input',
      JSON.stringify({ instanceId: id })
    )) as Executed<Instance>;
    expect(stopped.result.vmState).toBe('stopped');

    const ids = async (query: string) =>
      (
        (await stack.temporal('workflow', 'list', '--query', query)) as Array<{ execution: { workflowId: string } }>
      ).map((w) => w.execution.workflowId);
    await vi.waitFor(
      async () => {
        expect(await ids(`InstanceId = '${id}'`)).toEqual(
          expect.arrayContaining([`build-cl-vm1`, `resize-${id}`, `stop-${id}-1`])
        );
        expect(await ids(`ComputeHost = '${resized.result.host}' AND WorkflowType = 'stop'`)).toEqual([`stop-${id}-1`]);
        expect(await ids(`VmState = 'stopped'`)).toContain(`stop-${id}-1`);
        expect(await ids(`VmState = 'active' AND WorkflowType = 'buildInstance'`)).toEqual(
          expect.arrayContaining(['build-cl-vm1', 'build-cl-vm2'])
        );
      },
      { timeout: 30_000, interval: 1_000 }
    );
  });

  it('gives no compute process a store credential (read from /proc/<pid>/environ); the conductors have theirs', () => {
    const root = stack.cluster!.child!.pid!;
    const computes = computeWorkerPids(root);
    expect(computes.length).toBeGreaterThanOrEqual(3);
    assertNoStoreCredentials(computes);
    // The check can fail: a conductor's environment does hold the store's URL.
    const conductors = computeWorkerPids(root, /conductor-worker/);
    expect(conductors).toHaveLength(2);
    expect(storeCredentialsOf(conductors).every((f) => f.variables.includes('DATABASE_URL'))).toBe(true);
  });

  it('serves the Web UI with its assets, reading the cluster through the frontend over mTLS', async () => {
    const ui = `http://127.0.0.1:${stack.ports.TEMPORAL_UI_PORT}`;
    const page = await (await fetch(`${ui}/`)).text();
    const asset = /(?:src|href)="(\/_app\/[^"]+\.js)"/.exec(page)?.[1];
    expect(asset, page.slice(0, 2000)).toBeDefined();
    expect((await fetch(`${ui}${asset}`)).status).toBe(200);
    const listed = (await (
      await fetch(
        `${ui}/api/v1/namespaces/default/workflows?query=${encodeURIComponent("WorkflowId = 'build-cl-vm1'")}`
      )
    ).json()) as { executions?: Array<{ execution: { workflowId: string } }> };
    expect(listed.executions?.map((e) => e.execution.workflowId)).toEqual(['build-cl-vm1']);
  });

  it('completes a burst of 20 builds on the replicas left after kill -9 of a conductor and a scheduler; nothing leaked', async () => {
    const t0 = Date.now();
    const killed = { conductor: stack.pidOf('conductor-1')!, scheduler: stack.pidOf('scheduler-1')! };
    const builds = await startBuilds(stack, 20, 'clb');
    await waitForTaskState(
      stack,
      builds.map((b) => b.workflowId),
      'spawning'
    );
    process.kill(killed.conductor, 'SIGKILL');
    process.kill(killed.scheduler, 'SIGKILL');
    // The supervisor restarts them after its backoff (30 s at most): until the burst is over, each
    // replacement is killed as soon as it is started, so the surviving replicas do the work.
    const replacements = new Set<number>();
    const keepDown = setInterval(() => {
      for (const name of ['conductor-1', 'scheduler-1']) {
        const pid = stack.pidOf(name);
        if (pid && pid !== killed.conductor && pid !== killed.scheduler && isAlive(pid)) {
          replacements.add(pid);
          process.kill(pid, 'SIGKILL');
        }
      }
    }, 100);
    const results = await outcomes(builds).finally(() => clearInterval(keepDown));
    console.log(`[cluster] replacements of the killed replicas killed at start during the burst: ${replacements.size}`);
    await figures(stack, 'cluster: kill -9 conductor-1 and scheduler-1 mid-burst (20 builds)', results, t0);
    expect(results.map((r) => r.result)).toEqual(results.map(() => 'ok'));
    await assertConsistent(stack);
    // The cluster's relay delivered every build's notifications to its RabbitMQ.
    const store = await openStore({ databaseUrl: stack.databaseUrl });
    try {
      const outbox = createNotificationOutbox(store);
      await vi.waitFor(async () => expect((await outbox.backlog()).count).toBe(0), { timeout: 30_000, interval: 250 });
      const ended = (await outbox.list({ limit: 10_000 })).filter((n) => n.eventType === 'instance.create.end');
      const endedIds = new Set(ended.map((n) => n.instanceId));
      expect(results.filter((r) => !endedIds.has(r.instanceId ?? null))).toEqual([]);
      expect(ended.every((n) => n.deliveredAt !== null)).toBe(true);
    } finally {
      await store.close();
    }
  });

  // The cluster's own services killed mid-burst, one after the other on the one stack: the supervisor
  // starts each again (CLUSTER_SERVICE_BACKOFF_SECONDS, 1 s), the workers and clients reconnect, and
  // every build of the burst ends active or error with a typed fault, nothing leaked.
  it.each([
    { service: 'temporal-history', fault: 'kill -9 of the history service' },
    { service: 'temporal-matching', fault: 'kill -9 of matching' },
    { service: 'temporal-frontend', fault: 'kill -9 of the frontend' },
    { service: 'postgres', fault: 'kill -9 of the PostgreSQL postmaster (a crash restart)' },
  ])(
    'keeps serving through $fault mid-burst: restarted, every build active or failed typed, nothing leaked',
    async ({ service, fault }) => {
      const killed = stack.pidOf(service)!;
      expect(isAlive(killed)).toBe(true);
      const builds = await startBuilds(stack, 8, `cf-${service.replace('temporal-', '')}`);
      await waitForTaskState(
        stack,
        builds.map((b) => b.workflowId),
        'spawning'
      );
      const from = stack.cluster!.output.length;
      const t0 = Date.now();
      process.kill(killed, 'SIGKILL');
      const restarted = await vi.waitFor(
        () => {
          const pid = stack.pidOf(service);
          expect(pid).not.toBe(killed);
          expect(isAlive(pid!)).toBe(true);
          return pid!;
        },
        { timeout: 60_000, interval: 100 }
      );
      const restartSeconds = (Date.now() - t0) / 1000;
      // Awaited afresh: a result's long poll may have run out of retries while the service was down.
      const results = await outcomes(reattach(stack, builds));
      await figures(stack, `cluster: ${fault} mid-burst (8 builds)`, results, t0);
      console.log(`[cluster] ${fault}: restarted after ${restartSeconds.toFixed(1)} s (pid ${killed} → ${restarted})`);
      expect(stack.cluster!.output.slice(from)).toContain(`launcher: ${service} exited (SIGKILL); restarting in 1.0 s`);
      const typed = new Set<string>(['ok', ...Object.values(FailureType)]);
      expect(results.filter((r) => !typed.has(r.result))).toEqual([]);
      await assertConsistent(stack, [], { boundMs: 120_000 });
      // No instance of the burst left building: active, or error with its fault recorded.
      const store = await openStore({ databaseUrl: stack.databaseUrl });
      try {
        const instances = createInstanceRepository(store);
        const names = new Set(builds.map((b) => b.workflowId.replace(/^build-/, '')));
        const burst = (await instances.list()).filter((i) => names.has(i.name));
        for (const i of burst) {
          expect(['active', 'error'], `${i.name} is ${i.vmState}`).toContain(i.vmState);
          if (i.vmState === 'error') expect(await instances.listFaults(i.instanceId)).not.toEqual([]);
        }
        expect(burst.filter((i) => i.vmState === 'active')).toHaveLength(
          results.filter((r) => r.result === 'ok').length
        );
      } finally {
        await store.close();
      }
    }
  );

  it('stops on Ctrl-C and a second start resumes from its data: the same workflows, instances and store', async () => {
    expect(await stack.stopCluster()).toBe(0);
    await stack.startCluster({ LAUNCHER_BACKOFF_SECONDS: '60' });
    console.log(`[cluster] restarted on its data in ${stack.startSeconds.toFixed(1)} s`);
    const described = (await stack.temporal('workflow', 'describe', '--workflow-id', 'build-cl-vm1')) as {
      workflowExecutionInfo: { status: string };
    };
    expect(described.workflowExecutionInfo.status).toBe('WORKFLOW_EXECUTION_STATUS_COMPLETED');
    const again = (await stack.temporal(
      'workflow',
      'execute',
      '--type',
      'buildInstance',
      '--task-queue',
      'conductor',
      '--workflow-id',
      'build-cl-after-restart',
      '--input',
      JSON.stringify({ name: 'cl-after-restart', flavor: 'm1.small', image: 'cirros' })
    )) as Executed<Instance>;
    expect(again.result.vmState).toBe('active');
    await assertConsistent(stack);
  });
});
