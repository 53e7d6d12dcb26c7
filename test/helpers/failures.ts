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
