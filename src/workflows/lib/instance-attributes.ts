import { upsertSearchAttributes } from '@temporalio/workflow';

import type { VmState } from '../../domain/instance';
import { ComputeHostKey, InstanceIdKey, VmStateKey } from '../../shared/search-attributes';

/** Keeps the search attributes of an operation current: `temporal workflow list --query "InstanceId='…'"`. */
export function tagInstance(tags: { instanceId?: string; host?: string | null; vmState?: VmState }): void {
  const pairs = [];
  if (tags.instanceId) pairs.push({ key: InstanceIdKey, value: tags.instanceId });
  if (tags.host) pairs.push({ key: ComputeHostKey, value: tags.host });
  if (tags.vmState) pairs.push({ key: VmStateKey, value: tags.vmState });
  if (pairs.length) upsertSearchAttributes(pairs);
}
