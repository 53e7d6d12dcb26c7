/**
 * Fault 9: the reconciler run by hand through the conductor CLI, with its Schedule off: an operator
 * terminates a build mid-spawn; `audit --fix` reports the finding and what the reconciler would do and
 * changes nothing (exit 3); `audit --fix --yes` heals it and audits clean (exit 0); `reconcile` then finds
 * nothing to do for it; `reset-state` sets a vm state and back. The checker and the live audit agree.
 */
import path from 'node:path';

import { afterAll, beforeAll, describe, expect, it } from 'vitest';

import { openStore } from '../../src/store/db';
import { createInstanceRepository } from '../../src/store/instances';
import { createPlacementRepository } from '../../src/store/placement';
import { ROOT, runCli } from '../helpers/cli';
import { assertConsistent, figures, fleet, outcomes, Stack, startBuilds, waitForTaskState } from './harness';

const CLI = path.join(ROOT, 'src', 'cli', 'conductor.ts');

interface Decision {
  kind: string;
  subject: string;
  outcome: string;
}

describe('fault: a build terminated mid-spawn, healed by hand with the conductor CLI', () => {
  const stack = new Stack(fleet('rcli', 2));
  beforeAll(() => stack.startAll(), 180_000);
  afterAll(() => stack.dispose());

  const conductor = (...args: string[]) =>
    runCli(CLI, args, { DATA_DIR: stack.dataDir, TEMPORAL_ADDRESS: stack.address, DATABASE_URL: undefined });

  it('audit --fix shows, --yes heals, reconcile and reset-state answer with tables and JSON', async () => {
    const t0 = Date.now();
    const [first] = await startBuilds(stack, 1, 'rcli');
    const active = (await first!.done).instanceId!;
    const [second] = await startBuilds(stack, 1, 'rcli');
    const { host } = await waitForTaskState(stack, [second!.workflowId], 'spawning');
    const building = (
      await stack.client.workflow.getHandle(second!.workflowId).query<{ instanceId: string }>('getProgress')
    ).instanceId;
    await stack.client.workflow.getHandle(second!.workflowId).terminate('operator: fault suite');
    const results = await outcomes([first!, second!]);

    const shown = await conductor('audit', '--fix', '--json');
    expect(shown.code, shown.stderr).toBe(3);
    const plan = JSON.parse(shown.stdout) as {
      audit: { findings: Array<{ kind: string; subject: string }> };
      reconcile: { dryRun: boolean; decisions: Decision[] };
    };
    expect(plan.audit.findings).toContainEqual(
      expect.objectContaining({ kind: 'task-state-without-workflow', subject: building })
    );
    expect(plan.reconcile.dryRun).toBe(true);
    expect(plan.reconcile.decisions).toEqual([
      expect.objectContaining({ kind: 'interrupted-operation', subject: building, outcome: 'planned' }),
    ]);
    const store = await openStore({ sqlitePath: path.join(stack.dataDir, 'conductor.sqlite') });
    try {
      const instances = createInstanceRepository(store);
      expect((await instances.get(building)).taskState).toBe('spawning');

      const table = await conductor('audit', '--fix');
      expect(table.code).toBe(3);
      expect(table.stdout).toContain('The reconciler would:');
      expect(table.stdout).toMatch(new RegExp(`interrupted-operation\\s+${building}\\s+${host}\\s+planned`));

      const applied = await conductor('audit', '--fix', '--yes');
      expect(applied.code, applied.stdout + applied.stderr).toBe(0);
      expect(applied.stdout).toMatch(new RegExp(`interrupted-operation\\s+${building}\\s+${host}\\s+applied`));
      expect(await instances.get(building)).toMatchObject({ vmState: 'error', taskState: null });
      expect(await createPlacementRepository(store).getAllocations(building)).toEqual([]);
      expect(stack.guests(host)).not.toContain(building);

      const again = await conductor('reconcile', '--json');
      expect(again.code, again.stderr).toBe(0);
      const result = JSON.parse(again.stdout) as { decisions: Decision[] };
      expect(result.decisions.filter((d) => d.subject === building)).toEqual([]);
      expect(result.decisions.filter((d) => d.kind === 'host-reconciled').map((d) => d.outcome)).toEqual([
        'applied',
        'applied',
      ]);
      const dry = await conductor('reconcile', '--dry-run');
      expect(dry.code).toBe(0);
      expect(dry.stdout).toContain('nothing was changed');

      const reset = await conductor('reset-state', active, '--error');
      expect(reset.code, reset.stderr).toBe(0);
      expect(reset.stdout).toMatch(/status\s+error/);
      const back = await conductor('reset-state', active, '--active', '--json');
      expect(back.code, back.stderr).toBe(0);
      expect(JSON.parse(back.stdout)).toMatchObject({ instanceId: active, vmState: 'active', taskState: null });
      expect((await instances.listActions(active)).filter((a) => a.action === 'resetState')).toHaveLength(2);
    } finally {
      await store.close();
    }
    await figures(stack, '9 a build terminated mid-spawn, healed with audit --fix --yes', results, t0);
    await assertConsistent(stack);
  });
});
