/**
 * pause, unpause, suspend and resume: Nova's API actions of those names plus the compute's
 * pause_instance, unpause_instance, suspend_instance and resume_instance, made durable. One shape for
 * the four: the operation lock (task state `pausing`, `unpausing`, `suspending`, `resuming`, from the
 * transition row's vm states), one compute step on the instance's host (its event `compute_<name>_instance`),
 * then the instance's new state:
 *
 * | type      | from        | guest                                             | ends                     |
 * | --------- | ----------- | ------------------------------------------------- | ------------------------ |
 * | `pause`   | `active`    | frozen in memory (QMP `stop`)                     | `paused`, power `paused` |
 * | `unpause` | `paused`    | runs on (`cont`)                                  | `active`, `running`      |
 * | `suspend` | `active`    | its memory saved on its host, its process ended   | `suspended`, `suspended` |
 * | `resume`  | `suspended` | restored from the saved memory, no boot           | `active`, `running`      |
 *
 * The step's undo is the inverse step. A failure, or a cancellation requested while the guest changed,
 * unwinds it (a guest that was paused is unpaused, one suspended resumed) and leaves the instance as it
 * was, with a fault; the compute call itself is never cut half-way (it always answers or times out).
 */
import type { InstancePatch, InstanceRecord } from '../domain/instance';
import { PowerState, VmState } from '../domain/instance';
import type { PauseInput } from '../domain/pause';
import { PauseInputSchema } from '../domain/pause';
import { defineOperation, step } from './lib/define-operation';
import { computeOn } from './lib/proxies';

/** The events of the compute steps, as Nova names them (wrap_instance_event). */
export const PAUSE_EVENT = 'compute_pause_instance';
export const UNPAUSE_EVENT = 'compute_unpause_instance';
export const SUSPEND_EVENT = 'compute_suspend_instance';
export const RESUME_EVENT = 'compute_resume_instance';

type Step = 'pauseInstance' | 'unpauseInstance' | 'suspendInstance' | 'resumeInstance';

interface PowerAction {
  /** The transition row and the workflow type. */
  name: 'pause' | 'unpause' | 'suspend' | 'resume';
  event: string;
  label: string;
  step: Step;
  /** The inverse step: the undo. */
  undo: Step;
  done: InstancePatch;
}

/**
 * One of the four as an operation definition. Fails typed, changing nothing before the lock:
 * InvalidRequest, InstanceNotFound, InstanceInvalidState (the vm state does not allow it, another
 * operation holds the instance, no host); after it, ComputeHostUnavailable when the host does not answer,
 * InstanceInvalidState when the guest's power state does not allow the step; each leaves the instance as
 * it was, with a fault.
 */
function powerAction(action: PowerAction): (input: PauseInput) => Promise<InstanceRecord> {
  return defineOperation({
    name: action.name,
    input: PauseInputSchema,
    transition: action.name,
    steps: ({ req: { instanceId, timeouts }, op, host }) => {
      const compute = computeOn(host, timeouts);
      return [
        step({
          event: action.event,
          label: `${action.label} on ${host}`,
          host,
          compute: host,
          // Only a step that may have reached the host has anything to undo; the undo is best effort.
          undo: async () => {
            if (op.journal.reachedHost(host)) await compute.cleanup[action.undo]({ instanceId }).catch(() => undefined);
          },
          run: () => compute.short[action.step]({ instanceId }),
        }),
      ];
    },
    // A cancellation requested while the guest changed: the change is undone.
    cancellation: 'between-steps',
    done: action.done,
  });
}

/** Pauses an active instance's guest in memory; returns its record (`paused`). */
export const pause = powerAction({
  name: 'pause',
  event: PAUSE_EVENT,
  label: 'pausing the guest',
  step: 'pauseInstance',
  undo: 'unpauseInstance',
  done: { vmState: VmState.Paused, powerState: PowerState.Paused },
});

/** Runs a paused instance's guest on; returns its record (`active`, running). */
export const unpause = powerAction({
  name: 'unpause',
  event: UNPAUSE_EVENT,
  label: 'unpausing the guest',
  step: 'unpauseInstance',
  undo: 'pauseInstance',
  done: { vmState: VmState.Active, powerState: PowerState.Running },
});

/** Suspends an active instance: its guest's memory saved on its host; returns its record (`suspended`). */
export const suspend = powerAction({
  name: 'suspend',
  event: SUSPEND_EVENT,
  label: "saving the guest's memory",
  step: 'suspendInstance',
  undo: 'resumeInstance',
  done: { vmState: VmState.Suspended, powerState: PowerState.Suspended },
});

/** Resumes a suspended instance from its saved memory; returns its record (`active`, running). */
export const resume = powerAction({
  name: 'resume',
  event: RESUME_EVENT,
  label: 'restoring the guest from its saved memory',
  step: 'resumeInstance',
  undo: 'suspendInstance',
  done: { vmState: VmState.Active, powerState: PowerState.Running },
});
