/** Queries, signals and updates, defined apart from workflow bodies so clients can import them. */
import { defineQuery, defineSignal } from '@temporalio/workflow';

import type { PowerState, TaskState, VmState } from '../domain/instance';

/** Live progress of an operation: what `temporal workflow query --name getProgress` prints. */
export interface OperationProgress {
  instanceId: string;
  operation: string;
  vmState: VmState;
  taskState: TaskState | null;
  powerState: PowerState;
  host: string | null;
  /** 1-based placement attempt (0 before the first). */
  attempt: number;
  /** The step in progress, e.g. "spawn on compute-a". */
  step: string;
  hostsTried: string[];
}

export const getProgressQuery = defineQuery<OperationProgress>('getProgress');

/** A placement attempt (child workflow run) tells its parent which host and step it is on. */
export interface PlacementProgress {
  attempt: number;
  host: string;
  taskState: TaskState;
  step: string;
}

export const placementProgressSignal = defineSignal<[PlacementProgress]>('placementProgress');
