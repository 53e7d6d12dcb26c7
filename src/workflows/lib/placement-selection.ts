/**
 * The selection a placement attempt places on, and how a run of it fails: the scheduler's choice (the
 * hosts, what an alternate claims, the hosts' zones), the one place it travels between the runs of a
 * placement attempt (the CarriedSelection in a `Rescheduled` failure's details: attemptFailure writes
 * it, carriedOf reads it) and the hosts a placement tried, read from its last failure.
 */
import { ApplicationFailure, isCancellation } from '@temporalio/workflow';

import { FailureType } from '../../domain/errors';
import type { Resources } from '../../domain/resources';
import { applicationCause, failureMessage, isFailureOfType, refusalFailure, timeoutType } from './failures';

/** What the scheduler chose: the host then its alternates (run N takes hosts[N-1]), what an alternate claims, the hosts' zones. */
export interface Selection {
  hosts: string[];
  resources: Resources;
  hostZones: Record<string, string | null>;
}

/**
 * What a placement attempt's `Rescheduled` failure carries in its details: its host and run, and the
 * selection when the attempt carries it (a batched build, whose first run may have asked the scheduler).
 * The one place a selection travels between runs: the server hands a run's failure to the next run (its
 * lastFailure) and the last run's to the parent. attemptFailure writes it; carriedOf reads it.
 */
export interface CarriedSelection {
  host: string;
  attempt: number;
  selection?: Selection;
}

/** The CarriedSelection of a placement attempt's failure (a run's lastFailure, a child's failure), if any. */
export function carriedOf(failure: unknown): CarriedSelection | undefined {
  const details: unknown = applicationCause(failure)?.details?.[0];
  if (typeof details !== 'object' || details === null) return undefined;
  const { host, attempt, selection } = details as Partial<CarriedSelection>;
  if (typeof host !== 'string' || typeof attempt !== 'number') return undefined;
  return { host, attempt, ...(selection && Array.isArray(selection.hosts) ? { selection } : {}) };
}

/**
 * The hosts a placement tried, from its last run's failure: the first `attempt` hosts of the selection it
 * carried, else of `hosts` (the list its parent gave); undefined when the failure names neither.
 */
export function hostsTriedBy(failure: unknown, hosts?: readonly string[]): string[] | undefined {
  const carried = carriedOf(failure);
  const list = carried?.selection?.hosts ?? hosts;
  return carried && list ? list.slice(0, carried.attempt) : undefined;
}

/**
 * How a placement attempt fails, once its compensations ran: a cancellation as it is; an abort type as a
 * non-retryable typed failure (`abortDefault` when untyped); anything else on this host (a step failed,
 * an alternate full, a host dead or silent) as the retryable `Rescheduled`, whose details are its
 * CarriedSelection (with `carry`, the selection, and the last host's failure made final: no run after it).
 */
export function attemptFailure(
  err: unknown,
  what: { operation: string; instanceId: string; host: string; attempt: number; hosts: number },
  abortTypes: readonly string[],
  abortDefault: string,
  carry?: { selection: Selection; lastHost: boolean }
): unknown {
  if (isCancellation(err)) return err;
  const message = failureMessage(err);
  if (isFailureOfType(err, ...abortTypes)) return refusalFailure(err, abortDefault);
  const timeout = timeoutType(err);
  const reason = timeout ? `compute host ${what.host} did not respond (${timeout} timeout)` : message;
  const carried: CarriedSelection = {
    host: what.host,
    attempt: what.attempt,
    ...(carry ? { selection: carry.selection } : {}),
  };
  return ApplicationFailure.create({
    type: FailureType.Rescheduled,
    message: `${what.operation} of instance ${what.instanceId} on ${what.host} failed (attempt ${what.attempt} of ${what.hosts}): ${reason}`,
    nonRetryable: carry?.lastHost ?? false,
    details: [carried],
  });
}
