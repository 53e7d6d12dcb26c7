/**
 * `reconcile [--dry-run] [--batch-size N]`: runs the reconciler once (a `reconcile` workflow with its own
 * id, the one the Schedule runs every period) and prints every decision: a table, or the workflow's
 * result with --json. Exit 0 when every decision was applied (or planned), 1 when one failed.
 */
import { WorkflowFailedError } from '@temporalio/client';
import type { Command } from 'commander';

import type { ReconcileDecision } from '../../domain/reconcile';
import type { ReconcileInput } from '../../domain/schemas';
import type { ReconcileResult } from '../../workflows/reconcile';
import { EXIT_FAILED, EXIT_OK, OperationFailed, printJson } from '../context';
import type { Context, Run } from '../context';
import { requestId, startWorkflow } from '../operation';
import { wholeNumber } from '../options';
import { table } from '../table';

/** Runs one reconcile workflow to its end; a failed run is an OperationFailed with its typed message. */
export async function runReconcile(ctx: Context, input: ReconcileInput): Promise<ReconcileResult> {
  const workflowId = `reconcile-cli-${requestId()}`;
  const handle = await startWorkflow(ctx, 'reconcile', workflowId, [input]);
  console.error(`reconcile ${workflowId}${input.dryRun ? ' (dry run)' : ''}`);
  try {
    return await handle.result();
  } catch (err) {
    if (err instanceof WorkflowFailedError) {
      const cause = err.cause as { type?: string; message?: string } | undefined;
      throw new OperationFailed(cause?.type ?? 'Failed', cause?.message ?? err.message);
    }
    throw err;
  }
}

/** The decisions as a table, with one line of counts. */
export function formatDecisions(decisions: readonly ReconcileDecision[], dryRun: boolean): string {
  if (decisions.length === 0) return dryRun ? 'reconcile (dry run): nothing to change' : 'reconcile: nothing to change';
  const rows = decisions.map((d) => [
    d.kind,
    d.subject,
    d.host,
    d.outcome,
    d.note ? `${d.detail} — ${d.note}` : d.detail,
  ]);
  const by = (o: ReconcileDecision['outcome']) => decisions.filter((d) => d.outcome === o).length;
  const summary = dryRun
    ? `reconcile (dry run): ${by('planned')} planned, ${by('skipped')} skipped; nothing was changed`
    : `reconcile: ${by('applied')} applied, ${by('skipped')} skipped, ${by('failed')} failed`;
  return `${table(['KIND', 'SUBJECT', 'HOST', 'OUTCOME', 'DETAIL'], rows)}\n${summary}`;
}

export function register(program: Command, run: Run): void {
  program
    .command('reconcile')
    .description('run the reconciler once and print its decisions (the schedule runs it every period)')
    .option('--dry-run', 'decide and report, change nothing')
    .option('--batch-size <n>', 'instances, then hosts, per batch (default 100)', wholeNumber(1))
    .action((options: { dryRun?: boolean; batchSize?: number }) =>
      run(async (ctx) => {
        const dryRun = options.dryRun === true;
        const result = await runReconcile(ctx, {
          dryRun,
          ...(options.batchSize !== undefined ? { batchSize: options.batchSize } : {}),
        });
        if (ctx.json) printJson(result);
        else console.log(formatDecisions(result.decisions, dryRun));
        return result.decisions.some((d) => d.outcome === 'failed') ? EXIT_FAILED : EXIT_OK;
      })
    );
}
