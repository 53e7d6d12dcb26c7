/**
 * `audit [--fix [--yes]]`: the consistency audit (src/cli/audit.ts) with `--live`: placement, workflows
 * and the compute hosts' guests (the conductor CLI talks to Temporal anyway), exit 3 on findings. With
 * `--fix` it also shows what the reconciler would change (a reconcile dry run); `--yes` applies it (a
 * reconcile run), then audits again: exit 0 when that audit is clean, 3 when findings remain.
 */
import type { Command } from 'commander';

import type { ReconcileDecision } from '../../domain/reconcile';
import type { AuditReport } from '../audit';
import { EXIT_CLEAN, EXIT_FINDINGS, formatReport, main as audit, runAudit } from '../audit';
import { EXIT_FAILED, UsageError } from '../context';
import type { Context, Run } from '../context';
import { formatDecisions, runReconcile } from './reconcile';

/**
 * The decisions that bear on the findings: every decision on an instance or an allocation, and a host's
 * own reconciliation only where the audit saw a stray guest on it.
 */
function relevant(decisions: readonly ReconcileDecision[], report: AuditReport): ReconcileDecision[] {
  const strayHosts = new Set(report.findings.filter((f) => f.kind === 'stray-guest').map((f) => f.host));
  return decisions.filter(
    (d) => (d.kind !== 'host-reconciled' && d.kind !== 'host-skipped') || strayHosts.has(d.subject)
  );
}

async function fix(ctx: Context, apply: boolean): Promise<number> {
  const before = await runAudit(ctx.env, true);
  if (before.clean) {
    if (ctx.json) console.log(JSON.stringify({ audit: before }));
    else console.log(`${formatReport(before)}\nnothing to fix`);
    return EXIT_CLEAN;
  }
  const planned = await runReconcile(ctx, { dryRun: true });
  if (!apply) {
    const decisions = relevant(planned.decisions, before);
    if (ctx.json) console.log(JSON.stringify({ audit: before, reconcile: { ...planned, decisions } }));
    else
      console.log(
        `${formatReport(before)}\n\nThe reconciler would:\n${formatDecisions(decisions, true)}\n(run again with --yes to apply)`
      );
    return EXIT_FINDINGS;
  }
  const applied = await runReconcile(ctx, {});
  const after = await runAudit(ctx.env, true);
  const decisions = relevant(applied.decisions, before);
  if (ctx.json) console.log(JSON.stringify({ audit: before, reconcile: { ...applied, decisions }, after }));
  else
    console.log(
      `${formatReport(before)}\n\nThe reconciler did:\n${formatDecisions(decisions, false)}\n\nAudit after:\n${formatReport(after)}`
    );
  if (applied.decisions.some((d) => d.outcome === 'failed') && !after.clean) return EXIT_FAILED;
  return after.clean ? EXIT_CLEAN : EXIT_FINDINGS;
}

export function register(program: Command, run: Run): void {
  program
    .command('audit')
    .description('the consistency audit: placement, workflows, guests (exit 3 on findings)')
    .option('--fix', 'also show what the reconciler would change (a reconcile dry run)')
    .option('--yes', 'with --fix: apply it, then audit again')
    .action((options: { fix?: boolean; yes?: boolean }) =>
      run((ctx) => {
        if (options.yes === true && options.fix !== true) throw new UsageError('--yes applies --fix: give both');
        if (options.fix === true) return fix(ctx, options.yes === true);
        return audit(ctx.json ? ['--live', '--json'] : ['--live']);
      })
    );
}
