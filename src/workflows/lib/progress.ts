/** What an operation shows of itself: the getProgress query's state, mirrored in the Web UI's current details. */
import { setCurrentDetails } from '@temporalio/workflow';

import type { OperationProgress } from '../../shared/messages';

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
