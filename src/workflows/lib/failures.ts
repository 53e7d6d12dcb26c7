/**
 * Failures across the wire: workflows match on the failure `type` string (the domain error's class
 * name), never on `instanceof`, and fail only with ApplicationFailure (a plain Error would retry the
 * workflow task forever): a domain error a workflow throws is translated once, at its boundary, by the
 * workflow interceptor (interceptors.ts, with toWireFailure below).
 */
import type { TimeoutType } from '@temporalio/common';
import { ActivityFailure, ApplicationFailure, ChildWorkflowFailure, TimeoutFailure } from '@temporalio/workflow';
import type { z } from 'zod';

import { DomainError, FailureType } from '../../domain/errors';
import { inputProblems, invalidRequestOf } from '../../domain/validation';
import type { DomainErrorLike } from '../../shared/wire-failure';
import { applicationFailureOf } from '../../shared/wire-failure';

/** The ApplicationFailure at the bottom of an activity/child failure chain, if any. */
export function applicationCause(err: unknown): ApplicationFailure | undefined {
  let current: unknown = err;
  for (let depth = 0; depth < 8 && current; depth++) {
    if (current instanceof ApplicationFailure) return current;
    if (current instanceof ActivityFailure || current instanceof ChildWorkflowFailure) current = current.cause;
    else return undefined;
  }
  return undefined;
}

/**
 * The failure type (domain error class name) of an error, unwrapping activity and child failures; a
 * domain error thrown in workflow code has its type before the frame translates it.
 */
export function failureType(err: unknown): string | undefined {
  if (err instanceof DomainError) return err.name;
  return applicationCause(err)?.type ?? undefined;
}

export function isFailureOfType(err: unknown, ...types: string[]): boolean {
  const type = failureType(err);
  return type !== undefined && types.includes(type);
}

/** The timeout kind when an activity failed by timing out (SCHEDULE_TO_START: host down; HEARTBEAT: died). */
export function timeoutType(err: unknown): TimeoutType | undefined {
  let current: unknown = err;
  for (let depth = 0; depth < 8 && current; depth++) {
    if (current instanceof TimeoutFailure) return current.timeoutType;
    if (current instanceof ActivityFailure || current instanceof ChildWorkflowFailure) current = current.cause;
    else return undefined;
  }
  return undefined;
}

/** A human message for a failure chain: the deepest cause's message. */
export function failureMessage(err: unknown): string {
  const app = applicationCause(err);
  if (app) return app.message;
  let current: unknown = err;
  let message = err instanceof Error ? err.message : String(err);
  for (let depth = 0; depth < 8 && current instanceof Error; depth++) {
    if (current.message) message = current.message;
    current = (current as { cause?: unknown }).cause;
  }
  return message;
}

/** A typed, non-retryable workflow failure; `type` is one of the domain failure types. */
export function typedFailure(type: string, message: string, details?: unknown): ApplicationFailure {
  return ApplicationFailure.create({
    type,
    message,
    nonRetryable: true,
    details: details === undefined ? [] : [details],
  });
}

/**
 * The one translation of a domain error (src/domain/errors: name, message, details) into the typed,
 * non-retryable failure that crosses the wire (src/shared/wire-failure.ts, the activities' too): its
 * type is the error's name, its message and details are kept. Workflow code throws the domain error
 * itself; this is for code that needs the failure inside the workflow (its type and message written).
 */
export function domainFailure(error: DomainErrorLike): ApplicationFailure {
  return applicationFailureOf(error, true);
}

/**
 * The one translation of what a workflow failed with into what crosses the wire: a domain error thrown
 * in workflow code becomes its typed failure; a cancellation and a typed failure pass unchanged. The
 * workflow interceptor (interceptors.ts) applies it to whatever a workflow, a signal or an Update throws
 * (a plain Error would fail the workflow task, retried forever, not the workflow); failOperation applies
 * it before it writes the failure. Workflow code just throws domain errors.
 */
export function toWireFailure(err: unknown): unknown {
  return err instanceof DomainError ? domainFailure(err) : err;
}

/**
 * A failure (a refusal before the lock, an activity's answer) as the non-retryable typed failure it
 * crosses the wire as: a domain error translated, a typed failure (an activity's, unwrapped) keeping its
 * type and message, anything else `fallback` with its message.
 */
export function refusalFailure(err: unknown, fallback: string = FailureType.OperationFailed): ApplicationFailure {
  if (err instanceof DomainError) return domainFailure(err);
  return typedFailure(failureType(err) ?? fallback, failureMessage(err));
}

/**
 * A failure saying `message`, typed as `err` is (a domain error's name, an activity's or child's
 * failure type), or `fallback` when it has no type: a failure given context ("after the switch-over")
 * keeps the type it crossed the wire with.
 */
export function failureSaying(
  err: unknown,
  message: string,
  fallback: string = FailureType.OperationFailed
): ApplicationFailure {
  return typedFailure(failureType(err) ?? fallback, message);
}

/**
 * The one refusal of an operation on an instance with no host: Nova's check_instance_host
 * (InstanceNotReady, 409), as the InstanceInvalidState it is here. Every operation that needs a host
 * (stop, start, console output, rebuild, evacuate, resize, migrate, live migration) raises this one.
 */
export function noHost(instance: { instanceId: string; vmState: string }, method: string): ApplicationFailure {
  return typedFailure(
    FailureType.InstanceInvalidState,
    `Cannot '${method}' instance ${instance.instanceId} while it is in vmState ${instance.vmState} with no host`
  );
}

/**
 * Validates a workflow input with its zod schema. Bad input fails the workflow at once, before anything
 * is claimed or written, as a non-retryable InvalidRequest whose message names the field.
 */
export function parseInput<S extends z.ZodType>(schema: S, input: unknown): z.output<S> {
  const parsed = schema.safeParse(input);
  if (parsed.success) return parsed.data;
  const problems = inputProblems(parsed.error.issues, input);
  const invalid = invalidRequestOf(problems);
  throw typedFailure(FailureType.InvalidRequest, invalid.message, {
    issues: problems.map((p) => ({ field: p.field, message: p.reason })),
  });
}
