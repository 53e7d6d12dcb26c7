import { patched, upsertSearchAttributes } from '@temporalio/workflow';

import type { VmState } from '../../domain/instance';
import { ComputeHostKey, InstanceIdKey, InstanceNameKey, VmStateKey } from '../../shared/search-attributes';

/**
 * Versioned: the instance's name joins an upsert the workflow already made (its InstanceName search
 * attribute); runs started before it replay without it.
 */
export const PATCH_INSTANCE_NAME_ATTRIBUTE = 'instance-name-attribute';

/** The name to tag with, on runs that have the patch (undefined on older runs, which never tagged it). */
export function instanceNameTag(name: string): { name?: string } {
  return patched(PATCH_INSTANCE_NAME_ATTRIBUTE) ? { name } : {};
}

/** Keeps the search attributes of an operation current: `temporal workflow list --query "InstanceId='…'"`. */
export function tagInstance(tags: {
  instanceId?: string;
  host?: string | null;
  vmState?: VmState;
  name?: string;
}): void {
  const pairs = [];
  if (tags.instanceId) pairs.push({ key: InstanceIdKey, value: tags.instanceId });
  if (tags.name) pairs.push({ key: InstanceNameKey, value: tags.name });
  if (tags.host) pairs.push({ key: ComputeHostKey, value: tags.host });
  if (tags.vmState) pairs.push({ key: VmStateKey, value: tags.vmState });
  if (pairs.length) upsertSearchAttributes(pairs);
}
