import { describe, expect, it } from 'vitest';

import { FailureType } from '../../../src/domain/errors';
import { openStore } from '../../../src/store/db';
import { createPlacementRepository, type PlacementRepository } from '../../../src/store/placement';
import { BACKENDS, runChildren, useFreshStore } from './backends';
import { plainHost, res } from './fixtures';

interface Tally {
  ok: number;
  failed: number;
  other: Error[];
}

async function claimAll(repos: PlacementRepository[], host: string, count: number, prefix = 'vm'): Promise<Tally> {
  const tally: Tally = { ok: 0, failed: 0, other: [] };
  await Promise.all(
    Array.from({ length: count }, async (_, i) => {
      try {
        await repos[i % repos.length]!.claim(`${prefix}-${i}`, host, res(1, 256, 1));
        tally.ok++;
      } catch (err) {
        if ((err as Error).name === FailureType.ClaimFailed) tally.failed++;
        else tally.other.push(err as Error);
      }
    })
  );
  return tally;
}

describe.each(BACKENDS)('placement concurrency on $name', (backend) => {
  const fx = useFreshStore(backend);

  it('50 concurrent claims against room for 20: exactly 20 win', async () => {
    const placement = createPlacementRepository(fx.store);
    await placement.upsertProvider(plainHost('compute-a', 20));
    const tally = await claimAll([placement], 'compute-a', 50);
    expect(tally.other).toEqual([]);
    expect(tally).toMatchObject({ ok: 20, failed: 30 });
    const [a] = await placement.listHostStates(() => true);
    expect(a!.used).toEqual(res(20, 20 * 256, 20));
    expect(a!.instances.size).toBe(20);
    expect(await placement.audit()).toEqual({ orphans: expect.any(Array) as unknown, overCapacity: [] });
  });

  it('concurrent claims through separate store handles (separate pools on PostgreSQL) never over-commit', async () => {
    const other = await openStore(fx.database.options);
    try {
      const repos = [createPlacementRepository(fx.store), createPlacementRepository(other)];
      await repos[0]!.upsertProvider(plainHost('compute-a', 25));
      await repos[0]!.upsertProvider(plainHost('compute-b', 10));
      const [a, b] = await Promise.all([
        claimAll(repos, 'compute-a', 60, 'a'),
        claimAll([...repos].reverse(), 'compute-b', 30, 'b'),
      ]);
      expect([...a.other, ...b.other]).toEqual([]);
      expect([a.ok, b.ok]).toEqual([25, 10]);
      const report = await repos[1]!.audit();
      expect(report.overCapacity).toEqual([]);
      const states = await repos[1]!.listHostStates(() => true);
      expect(states.map((s) => s.used.VCPU)).toEqual([25, 10]);
    } finally {
      await other.close();
    }
  });

  it('claims racing releases and moves keep usage exact', async () => {
    const placement = createPlacementRepository(fx.store);
    await placement.upsertProvider(plainHost('compute-a', 10));
    for (let i = 0; i < 10; i++) await placement.claim(`old-${i}`, 'compute-a', res(1, 256, 1));
    // Release the 10 old consumers (half via a move to a migration that is then released) while 20 new
    // ones try to claim: at the end exactly 10 new ones can hold the host.
    const work: Promise<unknown>[] = [];
    for (let i = 0; i < 10; i++) {
      work.push(
        i % 2 === 0
          ? placement.releaseConsumer(`old-${i}`)
          : placement.moveAllocations(`old-${i}`, `mig-${i}`).then(() => placement.releaseConsumer(`mig-${i}`))
      );
    }
    const claims = claimAll([placement], 'compute-a', 20, 'new');
    await Promise.all(work);
    const first = await claims;
    expect(first.other).toEqual([]);
    // Whatever lost while the old ones were still there can retry now.
    const retry = await claimAll([placement], 'compute-a', 20, 'new');
    const holders = (await placement.allocationsByHost('compute-a')).map((a) => a.consumerId);
    expect(holders).toHaveLength(10);
    expect(holders.every((h) => h.startsWith('new-'))).toBe(true);
    expect(retry.other).toEqual([]);
    expect((await placement.listHostStates(() => true))[0]!.used.VCPU).toBe(10);
  });

  it('several worker PROCESSES claiming on the same hosts never over-commit them', async () => {
    const CLAIMS_PER_PROCESS = 240;
    const placement = createPlacementRepository(fx.store);
    const hosts = ['compute-a', 'compute-b', 'compute-c', 'compute-d'];
    for (const host of hosts) await placement.upsertProvider(plainHost(host, 10));
    type ChildResult = { ok: number; failed: number; conflicts: number; startedAt: number; finishedAt: number };
    const results = await runChildren<ChildResult>(
      [1, 2, 3, 4].map((p) => ({
        op: 'claim',
        options: fx.database.options,
        hosts,
        prefix: `p${p}`,
        count: CLAIMS_PER_PROCESS,
        parallel: 3,
      }))
    );
    // The four processes' claim windows overlap: this is a real race, not four turns. Each process makes
    // enough claims (most of them refused once the hosts are full) that its window outlasts a loaded
    // machine's delay in starting the others: with 60, faster claims let one finish first in CI.
    expect(Math.max(...results.map((r) => r.startedAt))).toBeLessThan(Math.min(...results.map((r) => r.finishedAt)));
    const total = { ok: 0, failed: 0, conflicts: 0 };
    for (const r of results) {
      total.ok += r.ok;
      total.failed += r.failed;
      total.conflicts += r.conflicts;
    }
    expect(total).toEqual({ ok: 40, failed: 4 * CLAIMS_PER_PROCESS - 40, conflicts: 0 });
    const states = await placement.listHostStates(() => true);
    expect(states.map((s) => [s.host, s.used.VCPU, s.instances.size])).toEqual(hosts.map((h) => [h, 10, 10]));
    expect((await placement.audit()).overCapacity).toEqual([]);
  }, 60_000);
});
