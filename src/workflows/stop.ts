/**
 * stop: Nova's API `stop` plus the compute's `stop_instance`, made durable. The operation lock
 * (powering-off) is taken first; then a graceful ACPI shutdown is requested on the instance's host and
 * re-sent every retry interval (10 s), the guest's power state read once a second, until the guest is off
 * or the shutdown timeout passes (60 s; the image's os_shutdown_timeout wins; the input wins over both),
 * then the guest is powered off by force.
 * The instance ends stopped. A guest that is already off is a success.
 *
 * NOTE(nova): the waiting lives here, in the workflow, as durable timers. Nova's _power_off_instance →
 * driver.power_off(timeout, retry_interval) loops inside the compute (libvirt's _clean_shutdown polls once
 * a second and re-sends every retry interval). Here every compute activity is one short call (request a
 * shutdown, read the power state, force it off) with nothing to wait on, so nothing needs to heartbeat; a
 * worker or host that dies mid-stop costs one short activity, not the whole wait; and the time-skipping
 * test server skips the timeout instead of sleeping through it. A compute activity that did wait would have
 * to heartbeat (the compute queue's heartbeatTimeout).
 */
import { CancellationScope, isCancellation, sleep } from '@temporalio/workflow';

import type { InstancePatch, InstanceRecord } from '../domain/instance';
import { PowerState, VmState } from '../domain/instance';
import type { StopInput } from '../domain/schemas';
import { DEFAULT_SHUTDOWN_TIMEOUT_SECONDS, StopInputSchema } from '../domain/schemas';
import { defineOperation, step } from './lib/define-operation';
import { finishOperation, hostFailure } from './lib/ending';
import { noHost } from './lib/failures';
import type { Operation } from './lib/operation';
import { computeOn, conductor } from './lib/proxies';

/** The event of the compute step, as Nova names it (wrap_instance_event on stop_instance). */
export const STOP_EVENT = 'compute_stop_instance';

/**
 * At most this many retry rounds per stop: each round is a timer and up to two activities in the history.
 * A longer timeout stretches the interval instead (3600 s at 10 s would otherwise be 360 rounds; 1 s, 3600).
 */
export const MAX_SHUTDOWN_ROUNDS = 360;

/** At most this many power-state reads per stop: a longer timeout reads less often (3600 s: every 10 s). */
export const MAX_SHUTDOWN_POLLS = 360;

/**
 * The polls of one wait between ACPI requests, in seconds: a 10 s wait polled every second is ten 1 s
 * polls; the poll interval stretches so one stop makes at most MAX_SHUTDOWN_POLLS reads.
 */
export function shutdownPolls(waitSeconds: number, timeoutSeconds: number): number[] {
  const every = Math.max(1, Math.ceil(timeoutSeconds / MAX_SHUTDOWN_POLLS));
  const polls: number[] = [];
  for (let waited = 0; waited < waitSeconds; waited += every) polls.push(Math.min(every, waitSeconds - waited));
  return polls;
}

export type ShutdownTimeoutSource = 'request' | 'image' | 'default';

export interface ShutdownTimeout {
  seconds: number;
  /** Where it came from: the input's shutdownTimeoutSeconds, the image's os_shutdown_timeout, the default. */
  source: ShutdownTimeoutSource;
}

/**
 * The shutdown timeout of one stop: the input's override, else the image's os_shutdown_timeout, else 60 s.
 * NOTE(nova): _get_power_off_values takes the image's value over `[DEFAULT] shutdown_timeout`.
 */
export function resolveShutdownTimeout(req: {
  shutdownTimeoutSeconds?: number | undefined;
  imageOsShutdownTimeoutSeconds?: number | undefined;
}): ShutdownTimeout {
  if (req.shutdownTimeoutSeconds !== undefined) return { seconds: req.shutdownTimeoutSeconds, source: 'request' };
  if (req.imageOsShutdownTimeoutSeconds !== undefined)
    return { seconds: req.imageOsShutdownTimeoutSeconds, source: 'image' };
  return { seconds: DEFAULT_SHUTDOWN_TIMEOUT_SECONDS, source: 'default' };
}

/** The image's os_shutdown_timeout, when the image is known and has one (a stop or a shelve falls back on the default). */
export async function imageShutdownTimeout(image: string): Promise<number | undefined> {
  return (await conductor.getImage({ name: image }).catch(() => null))?.properties.osShutdownTimeout;
}

/**
 * The waits between ACPI requests, in seconds, adding up to the timeout: 60 s at 10 s is six waits of
 * 10 s, 25 s at 10 s is 10, 10, 5; a timeout of 0 has none (powered off at once). Never more than
 * MAX_SHUTDOWN_ROUNDS waits.
 */
export function shutdownWaits(timeoutSeconds: number, retryIntervalSeconds: number): number[] {
  if (timeoutSeconds <= 0) return [];
  const interval = Math.max(retryIntervalSeconds, Math.ceil(timeoutSeconds / MAX_SHUTDOWN_ROUNDS));
  const waits: number[] = [];
  for (let waited = 0; waited < timeoutSeconds; waited += interval)
    waits.push(Math.min(interval, timeoutSeconds - waited));
  return waits;
}

/** How the guest went off. */
export interface PowerOffOutcome {
  how: 'already-off' | 'graceful' | 'forced' | 'crashed';
  /** ACPI shutdown requests sent. */
  requests: number;
  /** Seconds waited on the guest (workflow time). */
  waitedSeconds: number;
}

/** The event's details: graceful or forced, and why. */
export function describePowerOff(outcome: PowerOffOutcome, timeout: ShutdownTimeout): string {
  const source = {
    request: 'the request',
    image: "the image's os_shutdown_timeout",
    default: 'the default',
  }[timeout.source];
  switch (outcome.how) {
    case 'already-off':
      return 'guest already off: nothing to do';
    case 'crashed':
      return 'guest had crashed: forced power-off, no graceful shutdown';
    case 'graceful':
      return `graceful shutdown: the guest powered off within ${outcome.waitedSeconds} s of ${outcome.requests} ACPI request(s)`;
    case 'forced':
      return timeout.seconds === 0
        ? `forced power-off: shutdown timeout 0 s (${source}), no graceful shutdown`
        : `forced power-off: the guest was still on after ${outcome.requests} ACPI request(s) and the shutdown timeout of ${timeout.seconds} s (${source})`;
  }
}

/**
 * Stops one instance and returns its record (`stopped`, power state `shutdown`). Fails with a typed
 * failure and leaves the instance as it was, with a fault: InvalidRequest, InstanceInvalidState (another
 * operation holds it, or its state does not allow a stop: the message names the state), InstanceNotFound
 * (no such instance, or no such guest on its host), ComputeHostUnavailable (its host did not answer).
 * Cancelled: the instance keeps its vm state, unless its guest was found off (then `stopped`).
 */
export const stop: (input: StopInput) => Promise<InstanceRecord> = defineOperation({
  name: 'stop',
  input: StopInputSchema,
  transition: 'stop',
  checks: {
    // NOTE(nova): check_instance_host refuses an instance with no host (InstanceNotReady, 409) before the
    // state check and before anything is written; an instance whose build found no host is `error` with no
    // host, and a stop must not add a fault that hides the build's.
    checkInstanceHost: async ({ instanceId }) => {
      const current = await conductor.getInstance({ instanceId });
      if (current.host === null && current.taskState === null) throw noHost(current, 'stop');
    },
  },
  // NOTE(nova): the image's os_shutdown_timeout (Nova keeps it in the instance's system metadata).
  prepare: async (op, req) =>
    resolveShutdownTimeout({
      ...req,
      imageOsShutdownTimeoutSeconds: req.imageOsShutdownTimeoutSeconds ?? (await imageShutdownTimeout(op.before.image)),
    }),
  steps: ({ req, op, host, ctx: timeout }) => [
    step({
      event: STOP_EVENT,
      label: `stopping the guest on ${host}`,
      host,
      compute: host,
      run: () =>
        powerOffGuest(op, host, computeOn(host, req.timeouts), timeout, {
          retryIntervalSeconds: req.shutdownRetryIntervalSeconds,
          // NOTE(nova): libvirt's _clean_shutdown reads the state once a second and re-sends every retry interval.
          pollsOf: (wait) => shutdownPolls(wait, timeout.seconds),
        }),
      details: (outcome) => describePowerOff(outcome, timeout),
    }),
  ],
  cancellation: 'steps',
  done: { vmState: VmState.Stopped, powerState: PowerState.Shutdown },
  stableState: ({ req, op, host }, err) => stoppedIfOff(op, err, host, req.timeouts),
});

/** Re-exported for the operations not yet on the frame (lib/ending.ts holds them). */
export { finishOperation, hostFailure };

type Compute = ReturnType<typeof computeOn>;

/**
 * The compute side of a stop (and of a shelve): graceful shutdown with retries on durable timers, then
 * forced. Each compute call is short and not cancellable (it always answers or times out, so no activity
 * is left behind); a cancellation lands on the timers in between. `pollsOf`: the power-state reads
 * between two ACPI requests (awaitCleanShutdown).
 */
export async function powerOffGuest(
  op: Pick<Operation, 'instanceId' | 'progress'>,
  host: string,
  compute: Compute,
  timeout: ShutdownTimeout,
  shutdown: { retryIntervalSeconds: number; pollsOf: (wait: number) => number[] }
): Promise<PowerOffOutcome> {
  const { instanceId, progress } = op;
  const call = <T>(fn: () => Promise<T>): Promise<T> => CancellationScope.nonCancellable(fn);

  progress.step = `reading the guest's power state on ${host}`;
  const power = (await call(() => compute.short.getPowerState({ instanceId }))).powerState;
  // NOTE(nova): stop_instance accepts a guest that is already off (a racing stop does not fail).
  if (power === PowerState.Shutdown) return { how: 'already-off', requests: 0, waitedSeconds: 0 };

  let requests = 0;
  let waitedSeconds = 0;
  // A crashed guest hears no ACPI request: straight to the forced power-off (libvirt's _destroy).
  const crashed = power === PowerState.Crashed;
  if (!crashed) {
    const clean = await awaitCleanShutdown(op, host, compute, {
      seconds: timeout.seconds,
      label: 'graceful shutdown requested',
      ...shutdown,
    });
    ({ requests, waitedSeconds } = clean);
    if (clean.off) return { how: 'graceful', requests, waitedSeconds };
  }

  // NOTE(nova): libvirt's power_off always ends with _destroy: a guest that ignores ACPI only makes the
  // stop take the whole timeout, it never fails it.
  progress.step = `forcing the power-off on ${host}`;
  await call(() => compute.short.powerOffInstance({ instanceId }));
  return { how: crashed ? 'crashed' : 'forced', requests, waitedSeconds };
}

export interface CleanShutdown {
  /** The guest powered itself off. */
  off: boolean;
  /** ACPI shutdown requests sent. */
  requests: number;
  /** Seconds waited on the guest (workflow time). */
  waitedSeconds: number;
}

/**
 * The guest's own shutdown (libvirt's _clean_shutdown), shared by stop and soft reboot: an ACPI request
 * every retry interval, the power state read at each of `pollsOf(wait)` between them, for at most
 * `seconds`. Each compute call is short and not cancellable; a cancellation lands on the timers.
 */
export async function awaitCleanShutdown(
  op: Pick<Operation, 'instanceId' | 'progress'>,
  host: string,
  compute: Compute,
  opts: { seconds: number; retryIntervalSeconds: number; label: string; pollsOf: (wait: number) => number[] }
): Promise<CleanShutdown> {
  const { instanceId, progress } = op;
  const call = <T>(fn: () => Promise<T>): Promise<T> => CancellationScope.nonCancellable(fn);
  let requests = 0;
  let waitedSeconds = 0;
  for (const wait of shutdownWaits(opts.seconds, opts.retryIntervalSeconds)) {
    let power = (await call(() => compute.short.requestShutdown({ instanceId }))).powerState;
    requests++;
    if (power === PowerState.Shutdown) return { off: true, requests, waitedSeconds };
    for (const poll of opts.pollsOf(wait)) {
      progress.step = `${opts.label} on ${host} (request ${requests}); ${waitedSeconds} of ${opts.seconds} s waited`;
      await sleep(poll * 1000);
      waitedSeconds += poll;
      power = (await call(() => compute.short.getPowerState({ instanceId }))).powerState;
      if (power === PowerState.Shutdown) return { off: true, requests, waitedSeconds };
    }
  }
  return { off: false, requests, waitedSeconds };
}

/**
 * The stable state of a failed or cancelled stop. NOTE(nova): reverts_task_state clears the task state and
 * records the fault; the vm state is left as it was. An ACPI request cannot be taken back, so a cancelled
 * stop reads the guest's power state once more: a guest found off is recorded stopped (what Nova's
 * _sync_power_states would do), one still on keeps the instance as it was.
 */
async function stoppedIfOff(
  op: Operation,
  err: unknown,
  host: string,
  timeouts: Parameters<typeof computeOn>[1]
): Promise<InstancePatch | undefined> {
  if (!isCancellation(err)) return undefined;
  const power = await computeOn(host, timeouts)
    .cleanup.getPowerState({ instanceId: op.instanceId })
    .then(
      (r) => r.powerState,
      () => undefined
    );
  return power === PowerState.Shutdown ? { vmState: VmState.Stopped, powerState: PowerState.Shutdown } : undefined;
}
