/**
 * The fake hypervisor's pause, unpause, suspend and resume (Nova's driver.pause / unpause / suspend /
 * resume), on the host's guest file. A paused guest is frozen in memory (power state `paused`); a
 * suspended one has its memory "saved" on the host (`savedMemory`) and no running guest (power state
 * `suspended`), while its port and disks stay. Each is idempotent: a retry after a lost answer finds the
 * guest already as asked and succeeds.
 */
import { PowerState } from '../../domain/instance';
import type { InstanceRequest } from '../driver';
import { DriverError } from '../driver';
import type { FakeHost } from './build';
import type { FakeGuest } from './guest-store';
import { logConsole, requireGuest } from './guest-store';

function refuse(h: FakeHost, guest: FakeGuest, what: string): DriverError {
  return new DriverError(
    `cannot ${what} the guest of instance ${guest.instanceId} on ${h.host}: its power state is ${guest.powerState}`
  );
}

/** Freezes a running guest (QMP `stop`); a paused one stays paused. */
export function pause(h: FakeHost, { instanceId }: InstanceRequest): Promise<PowerState> {
  return h.guests.mutate(instanceId, (state, at) => {
    const guest = requireGuest(state, instanceId);
    if (guest.powerState === PowerState.Paused) return guest.powerState;
    if (guest.powerState !== PowerState.Running) throw refuse(h, guest, 'pause');
    guest.powerState = PowerState.Paused;
    guest.shutdownRequestedAt = null;
    logConsole(guest, at, 'paused');
    return guest.powerState;
  });
}

/** Runs a paused guest on (QMP `cont`); a running one stays running. */
export function unpause(h: FakeHost, { instanceId }: InstanceRequest): Promise<PowerState> {
  return h.guests.mutate(instanceId, (state, at) => {
    const guest = requireGuest(state, instanceId);
    if (guest.powerState === PowerState.Running) return guest.powerState;
    if (guest.powerState !== PowerState.Paused) throw refuse(h, guest, 'unpause');
    guest.powerState = PowerState.Running;
    logConsole(guest, at, 'unpaused');
    return guest.powerState;
  });
}

/** Saves a running (or paused) guest's memory on the host and ends it; a suspended one stays suspended. */
export function suspend(h: FakeHost, { instanceId }: InstanceRequest): Promise<PowerState> {
  return h.guests.mutate(instanceId, (state, at) => {
    const guest = requireGuest(state, instanceId);
    if (guest.powerState === PowerState.Suspended) return guest.powerState;
    if (guest.powerState !== PowerState.Running && guest.powerState !== PowerState.Paused)
      throw refuse(h, guest, 'suspend');
    guest.savedMemory = { at, memoryMb: guest.flavor.memoryMb };
    guest.powerState = PowerState.Suspended;
    guest.shutdownRequestedAt = null;
    logConsole(guest, at, `suspended: ${guest.flavor.memoryMb} MB of memory saved`);
    return guest.powerState;
  });
}

/** Restores a suspended guest from its saved memory, running (no boot); a running one stays running. */
export function resume(h: FakeHost, { instanceId }: InstanceRequest): Promise<PowerState> {
  return h.guests.mutate(instanceId, (state, at) => {
    const guest = requireGuest(state, instanceId);
    if (guest.powerState === PowerState.Running) return guest.powerState;
    if (guest.powerState !== PowerState.Suspended || !guest.savedMemory) throw refuse(h, guest, 'resume');
    guest.savedMemory = null;
    guest.powerState = PowerState.Running;
    logConsole(guest, at, 'resumed from saved memory');
    return guest.powerState;
  });
}
