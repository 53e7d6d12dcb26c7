/**
 * The one translation of a domain error (src/domain/errors: name, message, details) into the typed
 * ApplicationFailure that crosses the wire, used on both sides of it: the activity interceptor
 * (src/workers/interceptors.ts) and the workflow one (src/workflows/lib/interceptors.ts, through
 * lib/failures.ts `domainFailure`). Its type is the error's name; its message and details are kept.
 */
import { ApplicationFailure } from '@temporalio/common';

/** A domain error as it crosses the wire (a DomainError, or anything shaped like one). */
export interface DomainErrorLike {
  name: string;
  message: string;
  details?: unknown;
}

/**
 * The typed failure of `error`. `nonRetryable`: an activity's follows NON_RETRYABLE_ERROR_TYPES (a
 * Rescheduled spawn may be retried by its caller's policy); a workflow's is always non-retryable.
 */
export function applicationFailureOf(error: DomainErrorLike, nonRetryable: boolean): ApplicationFailure {
  return ApplicationFailure.create({
    type: error.name,
    message: error.message,
    nonRetryable,
    details: error.details === undefined ? [] : [error.details],
  });
}
