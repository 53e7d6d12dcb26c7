/**
 * The conductor CLI's parsing and store handling, as a subprocess with no Temporal server: usage errors
 * exit 2 naming the option, help exits 0, and a missing or unmigrated store is an error (exit 1), never
 * created or migrated by the client. Operations against a running system: test/e2e/system.test.ts.
 */
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';

import { afterAll, beforeAll, describe, expect, it } from 'vitest';

import { migrateToLatest, openStore } from '../../../src/store/db';
import { createInstanceRepository } from '../../../src/store/instances';
import { ROOT, runCli } from '../../helpers/cli';
import { newInstance } from '../store/fixtures';

const CLI = path.join(ROOT, 'src', 'cli', 'conductor.ts');
const BOOT = ['boot', 'vm', '--flavor', 'm1.tiny', '--image', 'cirros'];

describe('npm run conductor', () => {
  let dir: string;
  let env: Record<string, string | undefined>;
  const conductor = (...args: string[]) => runCli(CLI, args, env);

  beforeAll(() => {
    dir = mkdtempSync(path.join(tmpdir(), 'conductor-cli-'));
    // Nothing listens there: a command that got as far as Temporal would fail, not hang.
    env = { DATA_DIR: path.join(dir, 'data'), DATABASE_URL: undefined, TEMPORAL_ADDRESS: '127.0.0.1:1' };
  });
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  it('--help lists every command and exits 0', async () => {
    const run = await conductor('--help');
    expect(run.code).toBe(0);
    for (const command of ['boot', 'list', 'show', 'stop', 'start', 'rebuild', 'evacuate', 'resize', 'migrate'])
      expect(run.stdout).toMatch(new RegExp(`^  ${command} `, 'm'));
    for (const command of [
      'confirm',
      'revert',
      'delete',
      'reset-state',
      'hosts',
      'host',
      'server-group',
      'audit',
      'reconcile',
    ])
      expect(run.stdout).toContain(`  ${command} `);
  });

  it('exits 2 on reset-state --active --error, audit --yes without --fix and a bad reconcile --batch-size', async () => {
    const runs = await Promise.all([
      conductor('reset-state', 'vm', '--active', '--error'),
      conductor('audit', '--yes'),
      conductor('reconcile', '--batch-size', '0'),
    ]);
    expect(runs.map((r) => r.code)).toEqual([2, 2, 2]);
    expect(runs[0]?.stderr).toMatch(
      /option '--active' cannot be used with option '--error'|option '--error' cannot be used with option '--active'/
    );
    expect(runs[1]?.stderr).toContain('--yes applies --fix: give both');
    expect(runs[2]?.stderr).toContain("option '--batch-size <n>' argument '0' is invalid");
    for (const run of runs) expect(run.stderr).not.toMatch(/\n\s+at /);
  });

  it.each([
    [['--max-attempts', 'abc'], /option '--max-attempts <n>' argument 'abc' is invalid/],
    [['--max-attempts', '-1'], /option '--max-attempts <n>' argument '-1' is invalid/],
    [['--max-attempts=0'], /option '--max-attempts <n>' argument '0' is invalid/],
    [
      ['--max-attempts', '11'],
      /option '--max-attempts <n>' argument '11' is invalid\. It must be a whole number from 1 to 10\./,
    ],
    [['--max-attempts', '2.5'], /option '--max-attempts <n>' argument '2\.5' is invalid/],
    [['--frobnicate'], /unknown option '--frobnicate'/],
  ])('boot %j exits 2 naming the option', async (extra, message) => {
    const run = await conductor(...BOOT, ...extra);
    expect(run.code).toBe(2);
    expect(run.stdout).toBe('');
    expect(run.stderr).toMatch(message);
    expect(run.stderr).not.toMatch(/\n\s+at /);
  });

  it.each([
    [['--count', '2', '--min-count', '1'], /option '--count <n>' cannot be used with option '--min-count <n>'/],
    [['--count', '0'], /option '--count <n>' argument '0' is invalid/],
    [
      ['--min-count', '3', '--max-count', '2'],
      /^InvalidRequest: Invalid request: maxCount: maxCount must be at least minCount$/m,
    ],
    [['--count', '51'], /^InvalidRequest: Invalid request: count: /m],
  ])('boot %j (several instances) exits 2 naming the option, before reaching Temporal', async (extra, message) => {
    const run = await conductor(...BOOT, ...extra);
    expect(run.code).toBe(2);
    expect(run.stdout).toBe('');
    expect(run.stderr).toMatch(message);
    expect(run.stderr).not.toMatch(/\n\s+at /);
  });

  it('server-group: lists its subcommands; a missing --policy, a bad policy or a missing name exits 2', async () => {
    const help = await conductor('server-group', '--help');
    expect(help.code).toBe(0);
    for (const sub of ['create', 'list', 'show', 'delete'])
      expect(help.stdout).toMatch(new RegExp(`^  ${sub}\\b`, 'm'));
    const runs = await Promise.all([
      conductor('server-group', 'create', 'g'),
      conductor('server-group', 'create', 'g', '--policy', 'sideways'),
      conductor('server-group', 'show'),
      conductor('server-group', 'frobnicate'),
    ]);
    expect(runs.map((r) => r.code)).toEqual([2, 2, 2, 2]);
    expect(runs[0]?.stderr).toContain("required option '--policy <policy>' not specified");
    expect(runs[1]?.stderr).toMatch(/argument 'sideways' is invalid. Allowed choices are affinity, anti-affinity/);
    expect(runs[2]?.stderr).toContain("missing required argument 'name'");
    for (const r of runs) expect(r.stderr).not.toMatch(/\n\s+at /);
  });

  it('exits 2 on an unknown command, a missing argument or required option, and a bad --state', async () => {
    const runs = await Promise.all([
      conductor('frobnicate'),
      conductor('show'),
      conductor('boot', 'vm', '--image', 'cirros'),
      conductor('list', '--state', 'sleeping'),
      conductor(),
      conductor('host', 'reboot', 'h1'),
      conductor('host', 'disable'),
    ]);
    expect(runs.map((r) => r.code)).toEqual([2, 2, 2, 2, 2, 2, 2]);
    expect(runs[0]?.stderr).toContain("unknown command 'frobnicate'");
    expect(runs[1]?.stderr).toContain("missing required argument 'instance'");
    expect(runs[2]?.stderr).toContain("required option '--flavor <flavor>' not specified");
    expect(runs[3]?.stderr).toContain("option '--state <state>' argument 'sleeping' is invalid");
    expect(runs[5]?.stderr).toContain("unknown command 'reboot'");
    expect(runs[6]?.stderr).toContain("missing required argument 'host'");
  });

  it('does not create a missing store: exit 1 with what to do', async () => {
    const run = await conductor('list');
    expect(run.code).toBe(1);
    expect(run.stderr.trim()).toMatch(/^conductor list: no store at .*conductor\.sqlite: start the workers/);
    expect(existsSync(path.join(dir, 'data'))).toBe(false);
  });

  it('reads a migrated store (an empty list, as a table or JSON)', async () => {
    const store = await openStore({ sqlitePath: path.join(dir, 'data', 'conductor.sqlite') });
    await migrateToLatest(store).finally(() => store.close());
    const [tableRun, jsonRun] = await Promise.all([conductor('list'), conductor('list', '--json')]);
    expect(tableRun).toMatchObject({ code: 0, stderr: '' });
    expect(tableRun.stdout).toMatch(/^ID\s+NAME\s+STATUS/);
    expect(jsonRun).toMatchObject({ code: 0, stderr: '' });
    expect(JSON.parse(jsonRun.stdout)).toEqual([]);
  });

  it("notifications: the outbox as a table, one instance's as JSON lines, after a seq; --prune; a bad --after exits 2", async () => {
    const store = await openStore({ sqlitePath: path.join(dir, 'data', 'conductor.sqlite') });
    try {
      await migrateToLatest(store);
      const repo = createInstanceRepository(store);
      for (const id of ['n-1', 'n-2']) {
        await repo.create(newInstance(id));
        const { actionId } = await repo.startAction(id, 'stop', `req-${id}`);
        await repo.finishAction(actionId, 'Success');
      }
    } finally {
      await store.close();
    }
    const table = await conductor('notifications');
    expect(table).toMatchObject({ code: 0, stderr: '' });
    expect(table.stdout.split('\n')[0]).toMatch(/^SEQ\s+TIME\s+EVENT\s+PRIORITY\s+PUBLISHER\s+INSTANCE\s+DELIVERY/);
    expect(table.stdout.match(/instance\.power_off\.(start|end)/g)).toHaveLength(4);

    const json = await conductor('notifications', '--instance', 'n-2', '--json');
    expect(json).toMatchObject({ code: 0, stderr: '' });
    const lines = json.stdout
      .trim()
      .split('\n')
      .map((l) => JSON.parse(l) as Record<string, unknown>);
    expect(lines.map((l) => l.event_type)).toEqual(['instance.power_off.start', 'instance.power_off.end']);
    expect(lines[0]).toMatchObject({ priority: 'INFO', payload: { 'nova_object.name': 'InstanceActionPayload' } });
    expect(lines[0]!.message_id).toMatch(/^[0-9a-f-]{36}$/);

    const after = await conductor('notifications', '--after', String(lines[0]!.seq), '--json');
    expect(after.stdout.trim().split('\n')).toHaveLength(1);
    expect(await conductor('notifications', '--after', 'x')).toMatchObject({ code: 2 });
    // Nothing is older than the retention yet.
    expect((await conductor('notifications', '--prune')).stdout).toMatch(
      /^pruned 0 notification\(s\) older than 7 day/
    );
  });
});
