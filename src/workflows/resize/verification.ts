/** The decision of a resized instance (VERIFY_RESIZE), as the confirmResize and revertResize Updates see it. */
import type { ApplicationFailure } from '@temporalio/workflow';
import { CancellationScope, condition, isCancellation } from '@temporalio/workflow';

import { FailureType } from '../../domain/errors';
import type { OperationProgress, ResizeOutcome } from '../../shared/messages';
import { failureMessage, failureType, typedFailure } from '../lib/failures';

export type Decision = ResizeOutcome['decision'];

/**
 * The decision of a resized instance, as the confirmResize / revertResize Updates see it. Validators
 * accept only while the resize awaits its confirmation, or a repeat of the decision already taken (which
 * then returns the same outcome and changes nothing).
 */
export class Verification {
  decision?: { decision: Decision; automatic: boolean };
  /** The live progress of the operation, to name the instance's state in a rejection. */
  progress?: OperationProgress;
  private awaiting = false;
  /** What a user's confirm checks before it is taken (the source host up); a refusal changes nothing. */
  private confirmCheck?: () => Promise<void>;
  /** Confirms whose check is under way. */
  private checking = 0;
  private outcome?: ResizeOutcome;
  private failure?: ApplicationFailure;

  constructor(private readonly instanceId: string) {}

  validate(kind: Decision): void {
    const method = kind === 'confirmed' ? 'confirmResize' : 'revertResize';
    // A confirm being checked (the source host up) holds the decision: a revert meanwhile is refused.
    const taken = this.decision?.decision ?? (this.checking > 0 ? 'confirmed' : undefined);
    if (taken) {
      if (taken === kind) return;
      throw typedFailure(
        FailureType.InstanceInvalidState,
        `Cannot '${method}' instance ${this.instanceId}: its resize was already ${taken}`
      );
    }
    if (!this.awaiting) {
      const p = this.progress;
      const where = p ? ` while it is in vmState ${p.vmState} (taskState ${p.taskState ?? 'None'})` : '';
      throw typedFailure(
        FailureType.InstanceInvalidState,
        `Cannot '${method}' instance ${this.instanceId}${where}: no resize awaits confirmation`
      );
    }
  }

  /**
   * The Update's body: takes the decision (unless one was taken) and returns its outcome once settled. A
   * confirm whose check refuses fails typed, and the resize still awaits its decision.
   */
  async handle(kind: Decision): Promise<ResizeOutcome> {
    if (kind === 'confirmed' && this.decision === undefined && this.confirmCheck) {
      this.checking++;
      try {
        await this.confirmCheck();
      } catch (err) {
        throw isCancellation(err)
          ? err
          : typedFailure(failureType(err) ?? FailureType.MigrationError, failureMessage(err));
      } finally {
        this.checking--;
      }
    }
    this.decide(kind, false);
    // The caller gets the outcome even if the workflow is cancelled meanwhile (the decision still runs).
    await CancellationScope.nonCancellable(() =>
      condition(() => this.outcome !== undefined || this.failure !== undefined)
    );
    if (this.outcome) return this.outcome;
    throw this.failure ?? typedFailure(FailureType.MigrationError, 'the resize ended without an outcome');
  }

  decide(kind: Decision, automatic: boolean): void {
    this.decision ??= { decision: kind, automatic };
  }

  /** A delete's request: confirmed (automatically) if the resize awaits its decision and none was taken. */
  confirmBeforeDelete(): void {
    if (this.awaiting) this.decide('confirmed', true);
  }

  open(confirmCheck?: () => Promise<void>): void {
    this.awaiting = true;
    this.confirmCheck = confirmCheck;
  }

  settle(outcome: ResizeOutcome): void {
    this.outcome = outcome;
  }

  fail(err: unknown): void {
    // An Update handler may fail only with a TemporalFailure (anything else fails the workflow task).
    this.failure = isCancellation(err)
      ? typedFailure(FailureType.MigrationError, 'the resize was cancelled')
      : typedFailure(failureType(err) ?? FailureType.MigrationError, failureMessage(err));
  }
}
