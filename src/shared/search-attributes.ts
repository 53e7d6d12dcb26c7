import { defineSearchAttributeKey, SearchAttributeType } from '@temporalio/common';

/** Custom search attributes every conductor workflow sets; registered when a server starts. */
export const InstanceIdKey = defineSearchAttributeKey('InstanceId', SearchAttributeType.KEYWORD);
export const ComputeHostKey = defineSearchAttributeKey('ComputeHost', SearchAttributeType.KEYWORD);
export const VmStateKey = defineSearchAttributeKey('VmState', SearchAttributeType.KEYWORD);
/** The instance's name (a multi-create parent: the name its members are numbered from): find it in the Web UI by name. */
export const InstanceNameKey = defineSearchAttributeKey('InstanceName', SearchAttributeType.KEYWORD);

export const CONDUCTOR_SEARCH_ATTRIBUTES = [InstanceIdKey, ComputeHostKey, VmStateKey, InstanceNameKey] as const;

/** The same keys as `temporal server start-dev --search-attribute` and `operator search-attribute create` take them. */
export const SEARCH_ATTRIBUTE_CLI_ARGS: readonly string[] = CONDUCTOR_SEARCH_ATTRIBUTES.map((k) => `${k.name}=Keyword`);
