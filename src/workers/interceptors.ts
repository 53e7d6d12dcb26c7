import { ApplicationFailure } from '@temporalio/common';
import type { ActivityExecuteInput, ActivityInboundCallsInterceptor, Next } from '@temporalio/worker';

import { DomainError } from '../domain/errors';
import { NON_RETRYABLE_ERROR_TYPES } from '../shared/activity-options';

/**
 * Sends domain errors across the wire as typed ApplicationFailures with their structured details
 * (the field of an InvalidRequest, the hosts tried …), non-retryable where no retry can help.
 */
export class DomainErrorInterceptor implements ActivityInboundCallsInterceptor {
  async execute(input: ActivityExecuteInput, next: Next<ActivityInboundCallsInterceptor, 'execute'>): Promise<unknown> {
    try {
      return await next(input);
    } catch (err) {
      if (err instanceof DomainError) {
        throw ApplicationFailure.create({
          type: err.name,
          message: err.message,
          details: [err.details],
          nonRetryable: NON_RETRYABLE_ERROR_TYPES.includes(err.name),
        });
      }
      throw err;
    }
  }
}

export const activityInterceptors = { activity: [() => ({ inbound: new DomainErrorInterceptor() })] };
