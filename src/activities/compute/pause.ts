/**
 * Compute activities of pause, unpause, suspend and resume, on `compute-<host>`: Nova's compute-side
 * pause_instance, unpause_instance, suspend_instance and resume_instance, one short activity each (the
 * worker heartbeats them while they run: a QEMU suspend streams the guest's memory to a file for a second
 * or two).
 *
 * Each is idempotent (a retry after a lost answer finds the guest as asked and succeeds: pausing a paused
 * guest, resuming a running one). A guest whose power state does not allow the step (pausing a guest that
 * is off, resuming one with no saved memory) fails `InstanceInvalidState` naming its power state (not
 * retried: the host's answer would be the same); `InstanceNotFound` passes through.
 */
import type { VirtDriver } from '../../compute/driver';
import { DriverError } from '../../compute/driver';
import { InstanceInvalidState } from '../../domain/errors';
import type { PowerState } from '../../domain/instance';
import type { InstanceRef, PowerStateResult } from './index';

type Step = 'pause' | 'unpause' | 'suspend' | 'resume';

export function createPauseActivities({ driver }: { host: string; driver: VirtDriver }) {
  /** Runs the driver's step; a driver refusal becomes InstanceInvalidState naming the guest's power state. */
  const step = async (name: Step, instanceId: string): Promise<PowerStateResult> => {
    let powerState: PowerState;
    try {
      powerState = await driver[name]({ instanceId });
    } catch (err) {
      if (!(err instanceof DriverError)) throw err;
      const now = await driver.getPowerState({ instanceId }).catch(() => undefined);
      if (now === undefined) throw err;
      throw new InstanceInvalidState(instanceId, 'powerState', now, name);
    }
    return { powerState };
  };
  return {
    /** Freezes the guest in memory (paused). Idempotent. */
    pauseInstance: ({ instanceId }: InstanceRef) => step('pause', instanceId),
    /** Runs the paused guest on (running). Idempotent. */
    unpauseInstance: ({ instanceId }: InstanceRef) => step('unpause', instanceId),
    /** Saves the guest's memory on this host and ends it (suspended). Idempotent. */
    suspendInstance: ({ instanceId }: InstanceRef) => step('suspend', instanceId),
    /** Restores the suspended guest from its saved memory (running, no boot). Idempotent. */
    resumeInstance: ({ instanceId }: InstanceRef) => step('resume', instanceId),
  };
}
