/** What an operation shows of itself: the getProgress query's state, mirrored in the Web UI's current details. */
import { setCurrentDetails, setHandler } from '@temporalio/workflow';

import { PowerState, VmState } from '../../domain/instance';
import type { OperationProgress } from '../../shared/messages';
import { getProgressQuery } from '../../shared/messages';

/** The Web UI's current details (Markdown): the operation, the instance's state and the step under way. */
export function showProgress(p: OperationProgress): void {
  const lines = [
    `**${p.operation}** of instance \`${p.instanceId}\``,
    '',
    `- step: ${p.step}`,
    `- vm state: ${p.vmState}, task state: ${p.taskState ?? 'None'}, power state: ${p.powerState}`,
    `- host: ${p.host ?? 'None'}${p.attempt > 0 ? ` (placement attempt ${p.attempt})` : ''}`,
  ];
  if (p.hostsTried.length > 0) lines.push(`- hosts tried: ${p.hostsTried.join(', ')}`);
  setCurrentDetails(lines.join('\n'));
}

/**
 * The progress an operation shows before it has read its instance (nothing known yet but the request),
 * answered by getProgress from the first workflow task on; beginOperation later installs the live one.
 */
export function preliminaryProgress(instanceId: string, operation: string, step: string): OperationProgress {
  const progress: OperationProgress = {
    instanceId,
    operation,
    vmState: VmState.Building,
    taskState: null,
    powerState: PowerState.NoState,
    host: null,
    attempt: 0,
    step,
    hostsTried: [],
  };
  setHandler(getProgressQuery, () => progress);
  return progress;
}
