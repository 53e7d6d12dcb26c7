/**
 * Determinism guard: every committed history under test/replay/<workflowType>/<case>.json (recorded by
 * `npm run replay:record`) replays against the current workflow bundle. A change that alters the
 * commands of a workflow that may be running fails here, naming the history; ship it behind `patched()`
 * or a new Worker Deployment version instead (README, Versioning). The second test proves the guard
 * bites: a bundle whose `stop` issues one extra command fails to replay the committed stop history.
 */
import { readdirSync, readFileSync } from 'node:fs';
import path from 'node:path';

import { temporal } from '@temporalio/proto';
import type { ReplayWorkerOptions } from '@temporalio/worker';
import { bundleWorkflowCode, DefaultLogger, Worker } from '@temporalio/worker';
import { DeterminismViolationError } from '@temporalio/workflow';
import { describe, expect, inject, it } from 'vitest';

import * as workflows from '../../src/workflows';
import { historyFromJSON } from '../helpers/history-json';
import { installTestRuntime } from '../helpers/temporal';

const REPLAY_DIR = path.resolve(__dirname, '..', 'replay');
const EventType = temporal.api.enums.v1.EventType;
const CLOSED = new Set([
  EventType.EVENT_TYPE_WORKFLOW_EXECUTION_COMPLETED,
  EventType.EVENT_TYPE_WORKFLOW_EXECUTION_FAILED,
  EventType.EVENT_TYPE_WORKFLOW_EXECUTION_CANCELED,
  EventType.EVENT_TYPE_WORKFLOW_EXECUTION_CONTINUED_AS_NEW,
]);

interface Recorded {
  /** test/replay-relative path: <workflowType>/<case>.json */
  file: string;
  workflowType: string | undefined;
  history: temporal.api.history.v1.IHistory;
}

/** Every committed history (fixtures/ holds code, not histories). */
function loadHistories(): Recorded[] {
  return readdirSync(REPLAY_DIR, { withFileTypes: true })
    .filter((d) => d.isDirectory() && d.name !== 'fixtures')
    .flatMap((d) =>
      readdirSync(path.join(REPLAY_DIR, d.name))
        .filter((f) => f.endsWith('.json'))
        .sort()
        .map((f) => `${d.name}/${f}`)
    )
    .map((file) => {
      const history = historyFromJSON(JSON.parse(readFileSync(path.join(REPLAY_DIR, file), 'utf8')));
      const workflowType =
        history.events?.[0]?.workflowExecutionStartedEventAttributes?.workflowType?.name ?? undefined;
      return { file, workflowType, history };
    });
}

/** Replays each history (the file name as its workflow id) and returns "<file>: <error>" per failure. */
async function replayAll(options: ReplayWorkerOptions, histories: Recorded[]) {
  const failures: Array<{ file: string; error: unknown }> = [];
  const results = Worker.runReplayHistories(
    options,
    histories.map(({ file, history }) => ({ workflowId: file, history }))
  );
  for await (const result of results) if (result.error) failures.push({ file: result.workflowId, error: result.error });
  return failures;
}

const histories = loadHistories();

describe('replay of the committed histories', () => {
  it('covers every workflow type the conductor runs, each history closed, filed under its type', () => {
    expect(histories.length).toBeGreaterThanOrEqual(12);
    const workflowTypes = Object.entries(workflows)
      .filter(([, value]) => typeof value === 'function')
      .map(([name]) => name)
      .sort();
    expect(workflowTypes).toContain('stop');
    const recordedTypes = new Set(histories.map((h) => h.workflowType));
    expect(workflowTypes.filter((t) => !recordedTypes.has(t))).toEqual([]);
    for (const { file, workflowType, history } of histories) {
      expect(file.split('/')[0], file).toBe(workflowType);
      expect(CLOSED.has(history.events?.at(-1)?.eventType ?? EventType.EVENT_TYPE_UNSPECIFIED), file).toBe(true);
    }
  });

  it('matches the index: every file listed in test/replay/README.md, closed as it says', () => {
    const index = new Map(
      readFileSync(path.join(REPLAY_DIR, 'README.md'), 'utf8')
        .split('\n')
        .flatMap((line) => {
          const match = /^\| `([^`]+\.json)` +\| `[^`]+` +\| ([a-z_]+) +\|/.exec(line);
          return match ? [[match[1]!, match[2]!] as const] : [];
        })
    );
    expect([...index.keys()].sort()).toEqual(histories.map((h) => h.file).sort());
    for (const { file, history } of histories) {
      const last = history.events?.at(-1)?.eventType ?? EventType.EVENT_TYPE_UNSPECIFIED;
      expect(`EVENT_TYPE_WORKFLOW_EXECUTION_${index.get(file)?.toUpperCase()}`, file).toBe(EventType[last]);
    }
  });

  it('replays every history cleanly against the current bundle (determinism guard)', async () => {
    installTestRuntime();
    const failures = await replayAll({ workflowBundle: { codePath: inject('workflowBundlePath') } }, histories);
    expect(failures.map(({ file, error }) => `${file}: ${String(error)}`)).toEqual([]);
  });

  it('fails on a changed workflow: a stop with an extra timer cannot replay the committed stop history', async () => {
    installTestRuntime();
    const { code } = await bundleWorkflowCode({
      workflowsPath: path.join(REPLAY_DIR, 'fixtures', 'changed-stop-workflows.ts'),
      logger: new DefaultLogger('WARN'),
    });
    const stopHistories = histories.filter((h) => h.workflowType === 'stop');
    expect(stopHistories.map((h) => h.file)).toContain('stop/graceful.json');
    const failures = await replayAll({ workflowBundle: { code } }, stopHistories);
    expect(failures.map((f) => f.file)).toEqual(stopHistories.map((h) => h.file));
    for (const { error } of failures) expect(error).toBeInstanceOf(DeterminismViolationError);
    // The other workflows in that bundle are unchanged: they still replay.
    const others = histories.filter((h) => h.workflowType === 'start');
    expect(await replayAll({ workflowBundle: { code } }, others)).toEqual([]);
  });
});
