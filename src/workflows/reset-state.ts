/**
 * resetState: Nova's `nova reset-state [--active]`, for an operator to take an instance out of a state
 * nothing else will move it from. Refused with InstanceInvalidState while the operation holding the
 * instance still runs (its workflow is asked); otherwise the vm state is set (`error`, or `active`), the
 * task state and its owner cleared (a compare-and-swap on the ones read), and a `resetState` action
 * recorded with its event. Allocations and guests are left as they are (the reconciler heals them).
 */
import { FailureType, InstanceInvalidState } from '../domain/errors';
import type { InstanceRecord } from '../domain/instance';
import type { ResetStateInput } from '../domain/schemas';
import { ResetStateInputSchema } from '../domain/schemas';
import { isClosed, workflowStatusOf } from '../domain/workflow-status';
import { workflowInfo } from '@temporalio/workflow';
import { parseInput, refusalFailure } from './lib/failures';
import { conductor } from './lib/proxies';

export async function resetState(input: ResetStateInput): Promise<InstanceRecord> {
  const { instanceId, state } = parseInput(ResetStateInputSchema, input);
  const refused = (err: unknown) => {
    throw refusalFailure(err, FailureType.InstanceInvalidState);
  };
  const current = await conductor.getInstance({ instanceId }).catch(refused);
  const owner = current.taskOwner;
  if (current.taskState !== null && owner !== null) {
    const status = workflowStatusOf((await conductor.workflowStatus({ workflowIds: [owner] }))[owner] ?? 'NOT_FOUND');
    if (!isClosed(status))
      throw new InstanceInvalidState(
        instanceId,
        'taskState',
        current.taskState,
        'resetState',
        ` while its operation ${owner} is running (task state ${current.taskState}): cancel it or wait for it`
      );
  }
  const { instance } = await conductor
    .resetInstanceState({
      instanceId,
      vmState: state,
      expectTaskState: current.taskState,
      expectOwner: owner,
      requestId: workflowInfo().workflowId,
    })
    .catch(refused);
  return instance;
}
