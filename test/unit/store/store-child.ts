/**
 * A separate worker process for the store's multi-process tests (run with `node --import tsx`).
 * Argument: one JSON object.
 *   { op: 'migrate', options, startAt }  → { applied: string[] }
 *   { op: 'claim', options, startAt, hosts, prefix, count, parallel }
 *     claims 1 VCPU for consumers `<prefix>-<i>`, i < count, on hosts[i % hosts.length], `parallel` at a
 *     time → { ok, failed, conflicts, startedAt, finishedAt }
 * Barrier: once ready (store open; migrated for 'claim') the child prints `ready` and waits for a `go`
 * line on stdin, so the parent starts every child's work at the same moment. Prints one JSON line.
 */
import { FailureType } from '../../../src/domain/errors';
import { migrateToLatest, openStore, type StoreOptions } from '../../../src/store/db';
import { createPlacementRepository } from '../../../src/store/placement';

interface Args {
  op: 'migrate' | 'claim';
  options: StoreOptions;
  hosts?: string[];
  prefix?: string;
  count?: number;
  parallel?: number;
}

/** Says `ready`, then waits for the parent's `go`. */
function barrier(): Promise<void> {
  console.log('ready');
  return new Promise((resolve) => {
    let input = '';
    process.stdin.on('data', (chunk: Buffer) => {
      input += chunk.toString();
      if (input.includes('go')) {
        process.stdin.pause();
        resolve();
      }
    });
  });
}

async function main(): Promise<void> {
  const args = JSON.parse(process.argv[2] ?? '{}') as Args;
  const store = await openStore(args.options);
  try {
    if (args.op === 'migrate') {
      await barrier();
      const applied = await migrateToLatest(store);
      console.log(JSON.stringify({ applied }));
      return;
    }
    await migrateToLatest(store);
    await barrier();
    const placement = createPlacementRepository(store);
    const hosts = args.hosts ?? [];
    const count = args.count ?? 1;
    let ok = 0;
    let failed = 0;
    let conflicts = 0;
    let next = 0;
    const startedAt = Date.now();
    const lane = async (): Promise<void> => {
      for (let i = next++; i < count; i = next++) {
        try {
          await placement.claim(`${args.prefix}-${i}`, hosts[i % hosts.length]!, {
            VCPU: 1,
            MEMORY_MB: 64,
            DISK_GB: 1,
          });
          ok++;
        } catch (err) {
          const name = (err as Error).name;
          if (name === FailureType.ClaimFailed) failed++;
          else if (name === FailureType.ConcurrentUpdate) conflicts++;
          else throw err;
        }
      }
    };
    await Promise.all(Array.from({ length: args.parallel ?? 1 }, lane));
    console.log(JSON.stringify({ ok, failed, conflicts, startedAt, finishedAt: Date.now() }));
  } finally {
    await store.close();
  }
}

main().catch((err: unknown) => {
  console.error(err instanceof Error ? (err.stack ?? err.message) : String(err));
  process.exit(1);
});
