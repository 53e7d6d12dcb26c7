/**
 * `npm run audit` as a subprocess (node --import tsx src/cli/audit.ts) against a temp SQLite store:
 * exit 0 when clean, 3 with the orphans and over-committed hosts listed, --json for machines, 2 on bad
 * usage, 1 with one line (never a stack trace) when the store cannot be opened or is not migrated.
 */
import { randomUUID } from 'node:crypto';
import { existsSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';

import { afterEach, beforeEach, describe, expect, it } from 'vitest';

import type { AuditReport } from '../../../src/cli/audit';
import { HostSpecSchema } from '../../../src/domain/fleet';
import type { VmState } from '../../../src/domain/instance';
import { migrateToLatest, openStore } from '../../../src/store/db';
import { createInstanceRepository } from '../../../src/store/instances';
import { MIGRATIONS } from '../../../src/store/migrations';
import { createPlacementRepository } from '../../../src/store/placement';
import { ROOT, runCli } from '../../helpers/cli';

const CLI = path.join(ROOT, 'src', 'cli', 'audit.ts');
const TINY = { VCPU: 1, MEMORY_MB: 512, DISK_GB: 1 };

const runAudit = (args: string[], env: Record<string, string | undefined>) => runCli(CLI, args, env);

const host = (name: string, memoryMb: number) =>
  HostSpecSchema.parse({ name, vcpus: 8, memoryMb, diskGb: 100, reserved: { vcpus: 0, memoryMb: 512, diskGb: 0 } });

describe('npm run audit', () => {
  let dir: string;
  /** The environment the CLI sees: this SQLite store, never a PostgreSQL one from the outer shell. */
  let env: Record<string, string | undefined>;

  beforeEach(() => {
    dir = mkdtempSync(path.join(tmpdir(), 'conductor-audit-'));
    env = { DATA_DIR: path.join(dir, 'data'), DATABASE_URL: undefined };
  });
  afterEach(() => rmSync(dir, { recursive: true, force: true }));

  /** Fills the store: a live instance with its allocation, plus (when asked) an orphan, an errored instance's leftover and an over-committed host. */
  async function seed(problems: boolean) {
    const store = await openStore({ sqlitePath: path.join(dir, 'data', 'conductor.sqlite') });
    try {
      await migrateToLatest(store);
      const placement = createPlacementRepository(store);
      const instances = createInstanceRepository(store);
      await placement.upsertProviders([host('host-a', 4096), host('host-b', 4096)]);
      const instance = async (vmState: VmState, where: string) => {
        const instanceId = randomUUID();
        await instances.create({
          instanceId,
          name: `vm-${instanceId.slice(0, 8)}`,
          vmState,
          taskState: null,
          powerState: vmState === 'active' ? 'running' : 'nostate',
          host: vmState === 'error' ? null : where, // a build that failed holds no host
          availabilityZone: null,
          flavor: 'm1.tiny',
          image: 'cirros',
          vcpus: 1,
          memoryMb: 512,
          diskGb: 1,
          serverGroup: null,
        });
        await placement.claim(instanceId, where, TINY);
        return instanceId;
      };
      const live = await instance('active', 'host-a');
      if (!problems) return { live };
      const orphan = randomUUID();
      await placement.claim(orphan, 'host-a', TINY);
      const errored = await instance('error', 'host-a');
      const deleted = await instance('deleted', 'host-a');
      // host-b: 3 × 1,024 MB claimed, then its memory shrinks to 2,048 (capacity 1,536).
      const bigOnes: string[] = [];
      for (let i = 0; i < 3; i++) bigOnes.push(await instance('active', 'host-b'));
      for (const id of bigOnes) await placement.claim(id, 'host-b', { ...TINY, MEMORY_MB: 1024 });
      await placement.upsertProvider(host('host-b', 2048));
      return { live, orphan, errored, deleted };
    } finally {
      await store.close();
    }
  }

  it('exits 0 and says so when the store is clean', async () => {
    await seed(false);
    const run = await runAudit([], env);
    expect(run).toMatchObject({ code: 0, stderr: '' });
    expect(run.stdout.trim()).toBe('placement audit: no orphaned allocations, no host over capacity');
  });

  it('exits 1 on a store that does not exist yet, creating nothing (the workers own the schema)', async () => {
    const run = await runAudit(['--json'], env);
    expect(run.code).toBe(1);
    expect(run.stdout).toBe('');
    expect(run.stderr.trim()).toMatch(/^placement audit failed: no store at .*conductor\.sqlite: start the workers/);
    expect(existsSync(path.join(dir, 'data'))).toBe(false);
  });

  it('exits 1 on a store whose schema is not migrated, migrating nothing', async () => {
    const file = path.join(dir, 'data', 'conductor.sqlite');
    const store = await openStore({ sqlitePath: file });
    await store.close();
    const run = await runAudit([], env);
    expect(run.code).toBe(1);
    expect(run.stderr.trim()).toBe(
      `placement audit failed: the store's schema is not migrated (pending: ${Object.keys(MIGRATIONS).join(', ')}): ` +
        'start the workers (npm start), which create and migrate the store'
    );
    const again = await openStore({ sqlitePath: file });
    try {
      const tables = await again.db.introspection.getTables();
      expect(tables.map((t) => t.name)).toEqual([]);
    } finally {
      await again.close();
    }
  });

  it('exits 0 on an empty, migrated store', async () => {
    const store = await openStore({ sqlitePath: path.join(dir, 'data', 'conductor.sqlite') });
    await migrateToLatest(store).finally(() => store.close());
    const run = await runAudit(['--json'], env);
    expect(run.code).toBe(0);
    expect(JSON.parse(run.stdout)).toEqual({
      clean: true,
      orphans: [],
      overCapacity: [],
      findings: [],
      checked: { workflows: false, hostsReporting: [], hostsNotAnswering: [] },
    });
  });

  it('exits 3 and lists the orphaned allocations and the over-committed host', async () => {
    const { live, orphan, errored, deleted } = await seed(true);
    const run = await runAudit([], env);
    expect(run.code, run.stderr).toBe(3);
    expect(run.stderr).toBe('');
    const lines = run.stdout.split('\n');
    expect(lines).toContain('Orphaned allocations (3):');
    expect(lines).toContain('Hosts over capacity (1):');
    const orphanLine = lines.find((l) => l.includes(orphan!));
    expect(orphanLine).toMatch(/host-a\s+1\s+512\s+1\s+no such instance or migration/);
    expect(lines.find((l) => l.includes(errored!))).toMatch(/host-a\s+.*instance error, no host/);
    expect(lines.find((l) => l.includes(deleted!))).toMatch(/host-a\s+.*instance deleted/);
    expect(lines.find((l) => l.trim().startsWith('host-b'))).toMatch(/host-b\s+MEMORY_MB\s+3072\s+1536/);
    expect(run.stdout).not.toContain(live);
    expect(lines.at(-2)).toBe('placement audit: 3 orphaned allocations, 1 host over capacity');
  });

  it('--json prints one JSON document with the same findings', async () => {
    const { orphan, errored, deleted } = await seed(true);
    const run = await runAudit(['--json'], env);
    expect(run.code).toBe(3);
    expect(run.stdout.trim().split('\n')).toHaveLength(1);
    const report = JSON.parse(run.stdout) as AuditReport;
    expect(report.clean).toBe(false);
    expect(report.orphans).toHaveLength(3);
    expect(report.orphans).toEqual(
      expect.arrayContaining([
        { consumerId: orphan, host: 'host-a', resources: TINY, reason: 'no such instance or migration' },
        { consumerId: errored, host: 'host-a', resources: TINY, reason: 'instance error, no host' },
        { consumerId: deleted, host: 'host-a', resources: TINY, reason: 'instance deleted' },
      ])
    );
    expect(report.overCapacity).toEqual([{ host: 'host-b', resourceClass: 'MEMORY_MB', used: 3072, capacity: 1536 }]);
  });

  it('exits 2 on an unknown option or argument, with the usage on one line', async () => {
    const run = await runAudit(['--frobnicate'], env);
    expect(run.code).toBe(2);
    expect(run.stdout).toBe('');
    expect(run.stderr.trim().split('\n')).toHaveLength(1);
    expect(run.stderr).toContain("unknown option '--frobnicate'");
    expect(run.stderr).toContain('usage:');
    const extra = await runAudit(['orphans'], env);
    expect(extra.code).toBe(2);
    expect(extra.stderr.trim().split('\n')).toHaveLength(1);
    expect(extra.stderr).toMatch(/too many arguments.*usage:/);
  });

  it('exits 2 on a bad DATABASE_URL, naming the variable', async () => {
    const run = await runAudit([], { ...env, DATABASE_URL: 'not a url' });
    expect(run.code).toBe(2);
    expect(run.stderr).toContain('DATABASE_URL');
  });

  it('exits 1 with one line and no stack trace when the store cannot be opened', async () => {
    const notADir = path.join(dir, 'file');
    writeFileSync(notADir, 'x');
    const run = await runAudit([], { DATA_DIR: path.join(notADir, 'data'), DATABASE_URL: undefined });
    expect(run.code).toBe(1);
    expect(run.stdout).toBe('');
    const lines = run.stderr.trim().split('\n');
    expect(lines).toHaveLength(1);
    expect(lines[0]).toMatch(/^placement audit failed: .*ENOTDIR/);
    expect(run.stderr).not.toMatch(/\n\s+at /);
  });
});
