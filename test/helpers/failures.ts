/**
 * The typed failure a workflow ended with, as a test reads it: asserts the error is a
 * WorkflowFailedError and returns its cause's failure type and message.
 */
import { WorkflowFailedError } from '@temporalio/client';
import { expect } from 'vitest';

export function failureOf(error: unknown): { type?: string; message?: string } {
  expect(error).toBeInstanceOf(WorkflowFailedError);
  const cause = (error as WorkflowFailedError).cause as { type?: string; message?: string } | undefined;
  return { type: cause?.type, message: cause?.message };
}

/** The kind of failure a workflow ended with (`CancelledFailure`, `ApplicationFailure` …). */
export function failureNameOf(error: unknown): string | undefined {
  expect(error).toBeInstanceOf(WorkflowFailedError);
  return (error as WorkflowFailedError).cause?.name;
}

/** The typed failure of a workflow run's result that must fail (see failureOf). */
export async function failureOfRun(result: Promise<unknown>): Promise<{ type?: string; message?: string }> {
  return failureOf(
    await result.then(
      () => undefined,
      (error: unknown) => error
    )
  );
}
