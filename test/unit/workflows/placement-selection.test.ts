import { ApplicationFailure, ChildWorkflowFailure, RetryState } from '@temporalio/common';
import { describe, expect, it } from 'vitest';

import { FailureType } from '../../../src/domain/errors';
import type { Selection } from '../../../src/workflows/lib/placement-selection';
import { attemptFailure, carriedOf, hostsTriedBy } from '../../../src/workflows/lib/placement-selection';

const selection: Selection = {
  hosts: ['node-1', 'node-2', 'node-3'],
  resources: { VCPU: 1, MEMORY_MB: 512, DISK_GB: 1 },
  hostZones: { 'node-1': 'az1', 'node-2': null, 'node-3': 'az1' },
};
const what = { operation: 'Build', instanceId: 'i-1', host: 'node-2', attempt: 2, hosts: 3 };
const spawnFailed = ApplicationFailure.create({ type: 'SpawnFailed', message: 'spawn failed' });

/** The failure as the parent sees it: the last run's, inside the child's failure. */
const asChild = (cause: unknown) =>
  new ChildWorkflowFailure(
    'default',
    { workflowId: 'w', runId: 'r' },
    'placementAttempt',
    RetryState.MAXIMUM_ATTEMPTS_REACHED,
    cause as Error
  );

describe('the carried selection (the one place a selection travels between runs)', () => {
  it('is written into the Rescheduled failure: host, run and, when carried, the selection; the last host final', () => {
    const carried = attemptFailure(spawnFailed, what, [FailureType.BuildAborted], FailureType.BuildAborted, {
      selection,
      lastHost: false,
    }) as ApplicationFailure;
    expect(carried.type).toBe(FailureType.Rescheduled);
    expect(carried.message).toBe('Build of instance i-1 on node-2 failed (attempt 2 of 3): spawn failed');
    expect(carried.nonRetryable).toBe(false);
    // The wire format runs started before the frame read: [{ host, attempt, selection }].
    expect(carried.details).toEqual([{ host: 'node-2', attempt: 2, selection }]);
    const last = attemptFailure(spawnFailed, what, [], FailureType.BuildAborted, { selection, lastHost: true });
    expect((last as ApplicationFailure).nonRetryable).toBe(true);
    const plain = attemptFailure(spawnFailed, what, [], FailureType.BuildAborted) as ApplicationFailure;
    expect(plain.details).toEqual([{ host: 'node-2', attempt: 2 }]);
  });

  it('is read back by the next run (its lastFailure) and by the parent (through the child failure)', () => {
    const carried = attemptFailure(spawnFailed, what, [], FailureType.BuildAborted, { selection, lastHost: false });
    expect(carriedOf(carried)).toEqual({ host: 'node-2', attempt: 2, selection });
    expect(carriedOf(asChild(carried))?.selection).toEqual(selection);
    expect(hostsTriedBy(asChild(carried))).toEqual(['node-1', 'node-2']);
    // No selection carried: the hosts tried from the parent's list, or unknown without it.
    const plain = attemptFailure(spawnFailed, what, [], FailureType.MigrationError);
    expect(hostsTriedBy(asChild(plain), ['a', 'b', 'c'])).toEqual(['a', 'b']);
    expect(hostsTriedBy(asChild(plain))).toBeUndefined();
    // Anything else carries nothing.
    expect(carriedOf(spawnFailed)).toBeUndefined();
    expect(carriedOf(ApplicationFailure.create({ details: [{ selection: { hosts: 'x' } }] }))).toBeUndefined();
  });

  it('is not written for an abort: the abort keeps its type, untyped failures take the default', () => {
    const aborted = ApplicationFailure.create({ type: FailureType.InvalidRequest, message: 'bad image' });
    const failure = attemptFailure(aborted, what, [FailureType.InvalidRequest], FailureType.BuildAborted, {
      selection,
      lastHost: false,
    }) as ApplicationFailure;
    expect(failure.type).toBe(FailureType.InvalidRequest);
    expect(failure.nonRetryable).toBe(true);
    expect(carriedOf(failure)).toBeUndefined();
  });
});
