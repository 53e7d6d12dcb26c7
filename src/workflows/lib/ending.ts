/**
 * The successful end of an operation, and the one reading of a compute host that did not answer. Both
 * belong to the frame: defineOperation ends every operation it runs with them.
 */
import { CancellationScope } from '@temporalio/workflow';

import { ComputeHostUnavailable, FailureType } from '../../domain/errors';
import type { InstancePatch, InstanceRecord } from '../../domain/instance';
import { refusalFailure, timeoutType } from './failures';
import type { Operation } from './operation';
import { completeOperation } from './operation';

/**
 * completeOperation once the guest did what was asked: not cancellable (a cancellation now must not leave
 * the record behind the guest), and typed if the record moved away meanwhile (evacuate may take over an
 * instance whose task state is set), without writing over whoever moved it.
 */
export function finishOperation(op: Operation, patch: InstancePatch): Promise<InstanceRecord> {
  return CancellationScope.nonCancellable(() => completeOperation(op, patch)).catch((err: unknown) => {
    throw refusalFailure(err, FailureType.InstanceInvalidState);
  });
}

/**
 * A compute activity that timed out means its host did not answer: ComputeHostUnavailable (a
 * schedule-to-start timeout: no live worker on the host's queue). Anything else is returned as it is.
 */
export function hostFailure(err: unknown, host: string | null): unknown {
  const timedOut = timeoutType(err);
  if (!timedOut) return err;
  return new ComputeHostUnavailable(host ?? '(none)', `it did not answer (${timedOut} timeout)`);
}
