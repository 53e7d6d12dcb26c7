/**
 * The Temporal side of a store's stack identity (src/store/stack.ts): the conductor worker sets the
 * store's stack id on its namespace's data at start; the CLIs compare the two before they read the
 * store, and refuse a store of another stack (`make start`'s ./data while connected to the cluster).
 */
import type { ConnectionLike } from '@temporalio/client';

import type { StackIdentity } from '../store/stack';

/** The key of the namespace data entry holding the stack id of the store that belongs to it. */
export const STACK_ID_NAMESPACE_KEY = 'conductor-stack-id';

/** The stack id the namespace names (undefined when no conductor worker ever set it). */
export async function namespaceStackId(connection: ConnectionLike, namespace: string): Promise<string | undefined> {
  const res = await connection.workflowService.describeNamespace({ namespace });
  return res.namespaceInfo?.data?.[STACK_ID_NAMESPACE_KEY] ?? undefined;
}

/** Sets the store's stack id on the namespace's data (other entries are kept: the server merges them). */
export async function claimNamespace(connection: ConnectionLike, namespace: string, stackId: string): Promise<void> {
  if ((await namespaceStackId(connection, namespace)) === stackId) return;
  await connection.workflowService.updateNamespace({
    namespace,
    updateInfo: { data: { [STACK_ID_NAMESPACE_KEY]: stackId } },
  });
}

/**
 * Why this store is not the one of the stack the CLI is connected to, or undefined when it is (or when
 * the store records no stack: a store no conductor worker started on).
 */
export function wrongStack(
  store: { description: string; identity: StackIdentity | undefined },
  connected: { address: string; namespace: string; stackId: string | undefined }
): string | undefined {
  const { identity } = store;
  if (!identity || identity.stackId === connected.stackId) return undefined;
  const theirs = connected.stackId ? `stack ${connected.stackId}` : 'no conductor stack';
  return (
    `the store ${store.description} belongs to stack ${identity.stackId} (Temporal ${identity.temporalAddress}, ` +
    `namespace ${identity.temporalNamespace}), but this CLI is connected to ${connected.address} namespace ` +
    `${connected.namespace}, which serves ${theirs}. Point both at the same stack: make start's are the ` +
    `defaults (DATA_DIR=./data, TEMPORAL_ADDRESS=127.0.0.1:7233); make cluster's are its profile and ` +
    `data/cluster/cli.env (see docs/cluster.md).`
  );
}
