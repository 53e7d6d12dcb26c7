/**
 * Waiting on an operation's progress from a test, in real time (nothing skips outside `result()`): the
 * operation's progress query, asked every 50 ms until it says what the test waits for.
 */
import type { WorkflowHandle } from '@temporalio/client';
import { vi } from 'vitest';

import type { OperationProgress } from '../../src/shared/messages';
import { getProgressQuery } from '../../src/shared/messages';

/**
 * The operation's progress once `done` holds for it (a query that fails, before the operation holds
 * the lock, counts as not yet); fails after `timeoutMs` naming `what` and the last progress seen.
 */
export function progressReached(
  handle: WorkflowHandle,
  done: (progress: OperationProgress) => boolean | Promise<boolean>,
  what: string,
  timeoutMs = 30_000
): Promise<OperationProgress> {
  let last: OperationProgress | undefined;
  return vi.waitFor(
    async () => {
      last = (await handle.query(getProgressQuery).catch(() => undefined)) ?? last;
      if (!last || !(await done(last)))
        throw new Error(`timed out waiting for ${what}; progress: ${JSON.stringify(last)}`);
      return last;
    },
    { timeout: timeoutMs, interval: 50 }
  );
}
