/**
 * Every operation under kill -9: the table's rows (operations.ts) on one stack of three hosts, one row
 * after another. Each row ends stable: the operation ok or failed typed, no workflow running, one guest
 * per live instance, nothing leaked (the checker and the live audit agree: clean). FAULT_ROWS=<regex>
 * runs the matching rows only.
 */
import { afterAll, beforeAll, describe, it } from 'vitest';

import { fleet, Stack } from './harness';
import { type Row, runScenario } from './operations';

/** The scenario table: an operation at its riskiest step, and the process killed there (then restarted). */
const TABLE: Row[] = [
  { op: 'resize mid-disk-transfer', kill: 'source' },
  { op: 'resize mid-disk-transfer', kill: 'conductor' },
  { op: 'resize in VERIFY_RESIZE', kill: 'destination' },
  { op: 'resize in VERIFY_RESIZE', kill: 'source' },
  { op: 'resize in VERIFY_RESIZE', kill: 'conductor' },
  { op: 'cold migration', kill: 'source' },
  { op: 'cold migration', kill: 'scheduler' },
  { op: 'live migration mid-copy', kill: 'source' },
  { op: 'live migration mid-copy', kill: 'destination' },
  { op: 'live migration mid-copy', kill: 'conductor' },
  { op: 'live migration after switch-over', kill: 'destination' },
  { op: 'live migration after switch-over', kill: 'source' },
  { op: 'live migration after switch-over', kill: 'conductor' },
  { op: 'rebuild mid-spawn', kill: 'source' },
  { op: 'rebuild mid-spawn', kill: 'conductor' },
  { op: 'evacuate mid-spawn', kill: 'destination' },
  { op: 'evacuate mid-spawn', kill: 'conductor' },
  { op: 'snapshot mid-copy', kill: 'source' },
  { op: 'snapshot mid-copy', kill: 'conductor' },
  { op: 'unshelve mid-spawn', kill: 'destination' },
  { op: 'unshelve mid-spawn', kill: 'conductor' },
  { op: 'delete mid-destroy', kill: 'source' },
  { op: 'delete mid-destroy', kill: 'conductor' },
  { op: 'multi-create mid-batch', kill: 'conductor' },
  { op: 'multi-create mid-batch', kill: 'scheduler' },
  { op: 'multi-create mid-batch', kill: 'source' },
  { op: 'reconcile mid-batch', kill: 'conductor' },
];

const only = process.env.FAULT_ROWS ? new RegExp(process.env.FAULT_ROWS) : undefined;
const rows = TABLE.filter((r) => !only || only.test(`${r.op} ${r.kill}`));

describe('fault: every operation with a process killed at its riskiest step', () => {
  const stack = new Stack(fleet('op', 3, { vcpus: 64, memoryMb: 262_144, diskGb: 4000 }));
  beforeAll(() => stack.startAll(), 180_000);
  afterAll(() => stack.dispose());

  it.each(rows)(
    '$op: kill -9 $kill, restarted; stable, nothing leaked',
    async (row) => {
      await runScenario(stack, row);
    },
    120_000
  );
});
