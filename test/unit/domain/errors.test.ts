import { describe, expect, it } from 'vitest';

import {
  InstanceInvalidState,
  InvalidMigrationState,
  LiveMigrationAborted,
  MigrationError,
  NoValidHost,
} from '../../../src/domain/errors';
import { domainFailure, failureSaying } from '../../../src/workflows/lib/failures';

describe('domain errors on the wire (the one translation)', () => {
  it('InvalidMigrationState: the message the live migration refused its Updates with, typed and non-retryable', () => {
    const failure = domainFailure(new InvalidMigrationState('m-1', 'i-1', 'accepted', 'abortLiveMigration'));
    expect(failure).toMatchObject({
      type: 'InvalidMigrationState',
      nonRetryable: true,
      message:
        'Migration m-1 state of instance i-1 is accepted. Cannot abortLiveMigration while the migration is in this state.',
      details: [{ migrationId: 'm-1', instanceId: 'i-1', status: 'accepted', method: 'abortLiveMigration' }],
    });
  });

  it('MigrationError with and without its prefix; LiveMigrationAborted; NoValidHost.for', () => {
    expect(domainFailure(new MigrationError('destination h2 failed')).message).toBe(
      'Migration error: destination h2 failed'
    );
    expect(domainFailure(MigrationError.saying('the resize was cancelled'))).toMatchObject({
      type: 'MigrationError',
      message: 'the resize was cancelled',
    });
    expect(domainFailure(new LiveMigrationAborted('i-1', 'by the operator (abortLiveMigration)')).message).toBe(
      'Live migration of instance i-1 aborted: by the operator (abortLiveMigration)'
    );
    expect(NoValidHost.for('the live migration of instance i-1').message).toBe(
      'No valid host was found for the live migration of instance i-1.'
    );
  });

  it('failureSaying keeps the type a failure crossed with, or the fallback', () => {
    expect(failureSaying(new MigrationError('x'), 'x (after)', 'OperationFailed')).toMatchObject({
      type: 'MigrationError',
      message: 'x (after)',
    });
    expect(failureSaying(new Error('plain'), 'plain (after)', 'MigrationError').type).toBe('MigrationError');
  });

  it("InstanceInvalidState.changedMeanwhile: the rebuild's and the evacuation's refusal once locked", () => {
    expect(
      domainFailure(InstanceInvalidState.changedMeanwhile('i-1', 'rebuild', 'changed (host h1, flavor m1.small)'))
    ).toMatchObject({
      type: 'InstanceInvalidState',
      message: 'instance i-1 changed (host h1, flavor m1.small) while the rebuild started',
    });
    expect(InstanceInvalidState.changedMeanwhile('i-1', 'evacuate', 'moved to h2', 'evacuation').message).toBe(
      'instance i-1 moved to h2 while the evacuation started'
    );
  });
});
