import { describe, expect, it } from 'vitest';

import { formatJsonLogLine } from '../../../src/workers/json-log';
import type { Logger } from '@temporalio/worker';
import { withoutNoWorkflowsWarning } from '../../../src/workers/connection';

describe('formatJsonLogLine', () => {
  const at = BigInt(Date.UTC(2026, 10, 21, 12, 0, 0)) * 1_000_000n;

  it('writes one JSON object with time, level, process, message and the workflow and activity ids', () => {
    const line = formatJsonLogLine(
      {
        level: 'INFO',
        message: 'Activity completed',
        timestampNanos: at,
        meta: {
          workflowId: 'build-1',
          runId: 'r1',
          activityId: '7',
          activityType: 'spawnInstance',
          taskQueue: 'compute-node-1',
        },
      },
      'compute-node-1'
    );
    expect(line).not.toContain('\n');
    expect(JSON.parse(line)).toEqual({
      ts: '2026-11-21T12:00:00.000Z',
      level: 'info',
      process: 'compute-node-1',
      msg: 'Activity completed',
      workflowId: 'build-1',
      runId: 'r1',
      activityId: '7',
      activityType: 'spawnInstance',
      taskQueue: 'compute-node-1',
    });
  });

  it('keeps errors and bigints readable and never lets metadata override the core fields', () => {
    const line = JSON.parse(
      formatJsonLogLine({
        level: 'ERROR',
        message: 'failed',
        timestampNanos: at,
        meta: { error: new TypeError('boom'), attempt: 3n, msg: 'spoofed', level: 'debug' },
      })
    ) as Record<string, unknown>;
    expect(line).toMatchObject({
      level: 'error',
      msg: 'failed',
      error: { name: 'TypeError', message: 'boom' },
      attempt: '3',
    });
  });

  it('falls back to a plain line when metadata cannot be serialised', () => {
    const cyclic: Record<string, unknown> = {};
    cyclic.self = cyclic;
    const line = JSON.parse(
      formatJsonLogLine({ level: 'WARN', message: 'odd', timestampNanos: at, meta: { cyclic } })
    ) as Record<string, unknown>;
    expect(line).toMatchObject({ level: 'warn', msg: 'odd' });
  });
});

describe('withoutNoWorkflowsWarning', () => {
  it('drops the SDK\'s "No workflows registered" warning (workers that register none on purpose), passes the rest', () => {
    const seen: string[] = [];
    const record = (level: string) => (message: string) => seen.push(`${level} ${message}`);
    const inner: Logger = {
      log: (level, message) => seen.push(`${level} ${message}`),
      trace: record('TRACE'),
      debug: record('DEBUG'),
      info: record('INFO'),
      warn: record('WARN'),
      error: record('ERROR'),
    };
    const logger = withoutNoWorkflowsWarning(inner);
    logger.warn('No workflows registered, not polling for workflow tasks');
    logger.log('WARN', 'No workflows registered, not polling for workflow tasks');
    logger.warn('Worker state changed');
    logger.info('No workflows registered is only dropped as the warning it is');
    logger.error('boom');
    expect(seen).toEqual([
      'WARN Worker state changed',
      'INFO No workflows registered is only dropped as the warning it is',
      'ERROR boom',
    ]);
  });
});
