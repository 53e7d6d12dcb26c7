/**
 * listHostStates and claim at 10,000 hosts (the scheduler benchmark's scale). Prints the timings;
 * the assertions are loose ceilings so a slow CI machine does not flake, the printed numbers are what
 * to watch.
 */
import { performance } from 'node:perf_hooks';

import { describe, expect, it } from 'vitest';

import { createPlacementRepository } from '../../../src/store/placement';
import { BACKENDS, useFreshStore } from './backends';
import { hostSpec, res } from './fixtures';

const HOSTS = 10_000;
const INSTANCES_PER_HOST = 3;

function p50(samples: number[]): number {
  const sorted = [...samples].sort((a, b) => a - b);
  return sorted[Math.floor(sorted.length / 2)]!;
}

async function timed<T>(fn: () => Promise<T>): Promise<[T, number]> {
  const start = performance.now();
  const value = await fn();
  return [value, performance.now() - start];
}

const ms = (n: number) => `${n.toFixed(2)} ms`;

describe.each(BACKENDS)('placement at 10,000 hosts on $name', (backend) => {
  const fx = useFreshStore(backend);

  it('lists host states fast, cold, warm and after a claim', async () => {
    const placement = createPlacementRepository(fx.store);
    const names = Array.from({ length: HOSTS }, (_, i) => `host-${String(i).padStart(5, '0')}`);
    const [, seedMs] = await timed(() =>
      placement.upsertProviders(
        names.map((name, i) =>
          hostSpec(name, { availabilityZone: `az${i % 4}`, traits: i % 3 ? ['HW_CPU_X86_AVX2'] : [] })
        )
      )
    );
    // Existing load: 3 instances per host, inserted in bulk (claims one by one would take minutes here).
    const now = new Date().toISOString();
    const rows = names.flatMap((host, h) =>
      Array.from({ length: INSTANCES_PER_HOST }, (_, k) => `vm-${h}-${k}`).flatMap((consumer) => [
        { consumer_id: consumer, provider: host, resource_class: 'VCPU', used: 2, created_at: now },
        { consumer_id: consumer, provider: host, resource_class: 'MEMORY_MB', used: 4096, created_at: now },
        { consumer_id: consumer, provider: host, resource_class: 'DISK_GB', used: 40, created_at: now },
      ])
    );
    for (let i = 0; i < rows.length; i += 1000)
      await fx.store.db
        .insertInto('allocations')
        .values(rows.slice(i, i + 1000))
        .execute();

    const [cold, coldMs] = await timed(() => placement.listHostStates(() => true));
    expect(cold).toHaveLength(HOSTS);
    expect(cold[1234]).toMatchObject({ host: 'host-01234', used: res(6, 12288, 120), availabilityZone: 'az2' });
    expect(cold[1234]!.instances.size).toBe(3);

    const warm: number[] = [];
    for (let i = 0; i < 30; i++) warm.push((await timed(() => placement.listHostStates(() => true)))[1]);

    const claimMs: number[] = [];
    const afterClaimMs: number[] = [];
    for (let i = 0; i < 50; i++) {
      const host = names[(i * 197) % HOSTS]!;
      claimMs.push((await timed(() => placement.claim(`new-${i}`, host, res(1, 512, 1))))[1]);
      const [states, t] = await timed(() => placement.listHostStates(() => true));
      afterClaimMs.push(t);
      expect(states.find((s) => s.host === host)!.instances.has(`new-${i}`)).toBe(true);
    }
    const fresh = createPlacementRepository(fx.store, { cacheHostStates: false });
    const [, uncachedMs] = await timed(() => fresh.listHostStates(() => true));

    console.log(
      `[store:${backend.name}] ${HOSTS} hosts, ${rows.length} allocation rows: register ${ms(seedMs)}; ` +
        `listHostStates cold ${ms(coldMs)}, uncached ${ms(uncachedMs)}, warm p50 ${ms(p50(warm))}, ` +
        `after a claim p50 ${ms(p50(afterClaimMs))}; claim p50 ${ms(p50(claimMs))} max ${ms(Math.max(...claimMs))}`
    );
    expect(p50(warm)).toBeLessThan(25);
    expect(p50(afterClaimMs)).toBeLessThan(50);
    expect(p50(claimMs)).toBeLessThan(50);
    expect(coldMs).toBeLessThan(10_000);
  }, 120_000);
});
