/**
 * reboot: Nova's API `reboot` plus the compute's `reboot_instance`, made durable.
 *
 * SOFT (from `active`): the operation lock (`rebooting`), then on the host (`reboot_started`) the guest is
 * asked to shut down by ACPI, its power state read once a second, the request re-sent every retry
 * interval; once it is off it is started again from its disk. A guest still on after the soft-reboot
 * timeout (Nova's `wait_soft_reboot_seconds`, 120 s) is rebooted hard instead, as libvirt's
 * `_soft_reboot` falls back to `_hard_reboot`.
 *
 * HARD (from `active`, `stopped` or `error`): the lock (`rebooting_hard`), then (`reboot_started_hard`) the
 * guest powered off by force and started from its disk.
 *
 * Either way the instance ends `active` and running, its action `reboot` with one event
 * `compute_reboot_instance` saying how the guest went down. Once the lock is taken a reboot does not stop
 * half-way: a cancellation is recorded but waits for the guest to be up (a guest left off by a cancelled
 * reboot helps nobody).
 */
import type { InstanceRecord } from '../domain/instance';
import { PowerState, TaskState, VmState } from '../domain/instance';
import type { RebootInput } from '../domain/reboot';
import { RebootInputSchema } from '../domain/reboot';
import { DEFAULT_SHUTDOWN_RETRY_INTERVAL_SECONDS } from '../domain/schemas';
import { defineOperation, step } from './lib/define-operation';
import type { KernelOperation } from './lib/kernel';
import { computeOn } from './lib/proxies';
import { awaitCleanShutdown, shutdownPolls } from './stop';

/** The event of the compute step, as Nova names it (wrap_instance_event on reboot_instance). */
export const REBOOT_EVENT = 'compute_reboot_instance';

/** How the guest went down before it was started again. */
export interface RebootOutcome {
  how: 'soft' | 'hard' | 'soft-fell-back-to-hard';
  /** ACPI shutdown requests sent (soft). */
  requests: number;
  /** Seconds waited on the guest's own shutdown (workflow time). */
  waitedSeconds: number;
}

export function describeReboot(outcome: RebootOutcome, softRebootSeconds: number): string {
  switch (outcome.how) {
    case 'soft':
      return `soft reboot: the guest shut down within ${outcome.waitedSeconds} s of ${outcome.requests} ACPI request(s), then started`;
    case 'hard':
      return 'hard reboot: the guest powered off by force, then started';
    case 'soft-fell-back-to-hard':
      return `soft reboot fell back to hard: the guest was still on after ${outcome.requests} ACPI request(s) and ${softRebootSeconds} s; powered off by force, then started`;
  }
}

/**
 * Reboots one instance and returns its record (`active`, running). Fails typed, changing nothing before
 * the lock: InvalidRequest, InstanceNotFound, InstanceInvalidState (a soft reboot of an instance that is
 * not active, a hard one of a building, resized or deleted one, another operation holding it, or no host).
 * ComputeHostUnavailable when its host does not answer; a failure on the host leaves the instance as it
 * was, with a fault.
 */
export const reboot: (input: RebootInput) => Promise<InstanceRecord> = defineOperation({
  name: 'reboot',
  input: RebootInputSchema,
  transition: (req) => (req.type === 'HARD' ? 'rebootHard' : 'reboot'),
  steps: ({ req, op, host }) => {
    const hard = req.type === 'HARD';
    return [
      step({
        event: REBOOT_EVENT,
        label: `${hard ? 'hard' : 'soft'} rebooting the guest on ${host}`,
        taskState: hard ? TaskState.RebootStartedHard : TaskState.RebootStarted,
        host,
        compute: host,
        run: () => rebootGuest(op, host, hard, req),
        details: (outcome) => describeReboot(outcome, req.softRebootSeconds),
      }),
    ];
  },
  cancellation: 'none',
  done: { vmState: VmState.Active, powerState: PowerState.Running },
});

type RebootRequest = ReturnType<typeof RebootInputSchema.parse>;

/** The compute side: the guest down (its own ACPI shutdown, or forced), then started from its disk. */
async function rebootGuest(
  op: KernelOperation,
  host: string,
  hard: boolean,
  req: RebootRequest
): Promise<RebootOutcome> {
  const { instanceId, progress } = op;
  const compute = computeOn(host, req.timeouts);
  let outcome: RebootOutcome = { how: 'hard', requests: 0, waitedSeconds: 0 };
  let power = (await compute.short.getPowerState({ instanceId })).powerState;
  // NOTE(nova): libvirt's _soft_reboot asks a running guest only; anything else is rebooted hard.
  if (!hard && power === PowerState.Running) {
    const seconds = req.softRebootSeconds;
    const clean = await awaitCleanShutdown(op, host, compute, {
      seconds,
      retryIntervalSeconds: DEFAULT_SHUTDOWN_RETRY_INTERVAL_SECONDS,
      label: 'soft reboot: shutdown requested',
      pollsOf: (wait) => shutdownPolls(wait, seconds),
    });
    outcome = {
      how: clean.off ? 'soft' : 'soft-fell-back-to-hard',
      requests: clean.requests,
      waitedSeconds: clean.waitedSeconds,
    };
    if (clean.off) power = PowerState.Shutdown;
  }
  if (power !== PowerState.Shutdown) {
    progress.step = `powering off the guest on ${host} by force`;
    await compute.short.powerOffInstance({ instanceId });
  }
  progress.step = `starting the guest on ${host}`;
  await compute.short.powerOnInstance({ instanceId });
  return outcome;
}
