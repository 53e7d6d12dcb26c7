/**
 * The fake hypervisor's build, power, destroy and rebuild steps (Nova's spawn, destroy, power_off,
 * power_on, get_info, rebuild_block_device_mapping), on the instance's file of the host's guests. Every step is idempotent,
 * keyed by instance id.
 */
import { createHash, randomUUID } from 'node:crypto';

import { HypervisorBusy, InstanceNotFound } from '../../domain/errors';
import { PowerState } from '../../domain/instance';
import type {
  BlockDeviceInfo,
  BlockDevicesRequest,
  ConsoleOutputRequest,
  InstanceRequest,
  NetworkInfo,
  RebuildPreparation,
  SpawnOptions,
  SpawnRequest,
  SpawnResult,
} from '../driver';
import { DriverError, ImageUnacceptable } from '../driver';
import type { SpawnFault } from './faults';
import type { FaultStore } from './fault-store';
import type { GuestStore } from './guest-files';
import {
  asideKey,
  bootGuest,
  checkDiskFits,
  forgetResources,
  guestFlavorImage,
  logConsole,
  networkInfoFor,
  powerOnGuest,
  publicGuest,
  requireGuest,
  rootDiskFor,
  settleGuest,
} from './guest-store';
import { delay, runProgressClock, throwIfAborted, waitForAbort } from './spawn-clock';

/** What the fake's steps work on: one host's files and timings. */
export interface FakeHost {
  readonly host: string;
  /** Seconds a spawn (and a disk transfer) takes. */
  readonly spawnSeconds: number;
  /** Seconds a cooperative guest takes to power off after an ACPI request. */
  readonly shutdownSeconds: number;
  readonly guests: GuestStore;
  readonly faults: FaultStore;
  /** Images whose guests ignore ACPI power-button requests (only a forced power-off stops them). */
  readonly acpiIgnoringImages: ReadonlySet<string>;
}

/** Plugs a port for the instance; the same port on a retry (and on every host: it is the tenant's port). */
export function allocateNetworks(h: FakeHost, { instanceId }: InstanceRequest): Promise<NetworkInfo> {
  return h.guests.mutate(instanceId, (state) => {
    const info = state.networks[instanceId] ?? networkInfoFor(instanceId);
    state.networks[instanceId] = info;
    return info;
  });
}

/**
 * Prepares the root disk from the image. A flavor root disk of 0 means "as big as the image" (Nova);
 * otherwise an image larger than it throws FlavorDiskSmallerThanImage before anything is written.
 */
export async function prepareBlockDevices(
  h: FakeHost,
  { instanceId, flavor, image }: BlockDevicesRequest
): Promise<BlockDeviceInfo> {
  checkDiskFits(flavor, image);
  return h.guests.mutate(instanceId, (state) => {
    const info = rootDiskFor(flavor, image);
    state.blockDevices[instanceId] = info;
    return info;
  });
}

/**
 * Creates and boots the guest, taking `spawnSeconds`. A spawn of an instance whose guest completed
 * already returns that guest (powered on if it was off): never a second guest. A half-made guest left
 * by a run that died is taken over. On failure or abort the half-made guest, its networks and block
 * devices are torn down (Nova's _shutdown_instance + _cleanup_allocated_networks), unless a newer run
 * has taken it over meanwhile.
 */
export async function spawn(h: FakeHost, request: SpawnRequest, options: SpawnOptions = {}): Promise<SpawnResult> {
  const { signal, onProgress } = options;
  const { instanceId } = request;
  throwIfAborted(signal);
  checkDiskFits(request.flavor, request.image);

  const existing = await h.guests.mutate(instanceId, (state, at) => {
    const guest = state.guests[instanceId];
    if (guest?.status !== 'active') return undefined;
    powerOnGuest(guest, at);
    return publicGuest(guest);
  });
  if (existing) {
    onProgress?.(100);
    return { guest: existing, created: false };
  }

  const fault = await h.faults.consumeSpawnFault();
  if (fault.kind === 'busy') throw new HypervisorBusy(h.host, 'injected fault (busyNext)');

  const spawnId = randomUUID();
  await h.guests.mutate(instanceId, (state, at) => {
    const previous = state.guests[instanceId];
    state.guests[instanceId] = {
      instanceId,
      name: request.name,
      host: h.host,
      status: 'spawning',
      spawnId,
      ...guestFlavorImage(request.flavor, request.image),
      powerState: PowerState.NoState,
      network: state.networks[instanceId] ?? null,
      blockDevices: state.blockDevices[instanceId] ?? null,
      createdAt: previous?.createdAt ?? new Date(at).toISOString(),
      shutdownRequestedAt: null,
      boots: 0,
      console: [`[${new Date(at).toISOString()}] spawning: flavor ${request.flavor.name}, image ${request.image.name}`],
      // Only that the secrets were given (for tests to assert), never the secrets themselves.
      ...(request.adminPassword !== undefined ? { adminPasswordSet: true } : {}),
      ...(request.userData !== undefined
        ? { userDataSha256: createHash('sha256').update(request.userData).digest('hex') }
        : {}),
    };
  });

  try {
    await runProgressClock({
      totalMs: h.spawnSeconds * 1000,
      signal,
      onProgress,
      strike: spawnFaultStrike(h.host, fault, signal),
    });
    return await h.guests.mutate(instanceId, (state, at): SpawnResult => {
      const current = state.guests[instanceId];
      // NOTE(nova): an instance deleted during its build ends the build with InstanceNotFound.
      if (!current) throw new InstanceNotFound(instanceId);
      // Another run took the guest over: leave it to that run and report what is there.
      if (current.spawnId !== spawnId) return { guest: publicGuest(current), created: false };
      current.status = 'active';
      bootGuest(current, at);
      return { guest: publicGuest(current), created: true };
    });
  } catch (err) {
    await discardHalfMadeGuest(h, instanceId, spawnId);
    throw err;
  }
}

/** What an injected spawn fault does halfway: a hang never reports progress again; a failure throws. */
function spawnFaultStrike(
  host: string,
  fault: SpawnFault,
  signal: AbortSignal | undefined
): (() => Promise<void>) | undefined {
  if (fault.kind === 'hang') return () => waitForAbort(signal);
  if (fault.kind !== 'fail') return undefined;
  return () =>
    Promise.reject(
      fault.failure === 'abort'
        ? new ImageUnacceptable(`Image is unacceptable to the hypervisor on ${host}: ${fault.reason}`)
        : new DriverError(`Hypervisor error while spawning on ${host}: ${fault.reason}`)
    );
}

/** Tears down a half-made guest of this spawn run, with its networks and block devices. */
async function discardHalfMadeGuest(h: FakeHost, instanceId: string, spawnId: string): Promise<void> {
  await h.guests.mutate(instanceId, (state) => {
    const guest = state.guests[instanceId];
    if (!guest || guest.spawnId !== spawnId || guest.status !== 'spawning') return;
    delete state.guests[instanceId];
    forgetResources(state, instanceId);
  });
}

/**
 * Idempotent: removes the guest, its networks and block devices, and the copy a resize moved aside here
 * (Nova's destroy cleans the `_resize` directory up too); `false` when there was neither.
 */
export async function destroy(h: FakeHost, { instanceId }: InstanceRequest): Promise<boolean> {
  const wait = (await h.faults.get()).slow?.destroy ?? 0;
  if (wait > 0) await delay(wait * 1000, undefined);
  return h.guests.mutate(instanceId, (state) => {
    const aside = asideKey(instanceId);
    const existed = instanceId in state.guests || aside in state.guests;
    delete state.guests[instanceId];
    delete state.guests[aside];
    forgetResources(state, instanceId);
    return existed;
  });
}

/**
 * Sends an ACPI shutdown request and returns the power state right after. A cooperative guest reaches
 * `shutdown` `shutdownSeconds` after the first request it heeded (evaluated lazily from timestamps, so
 * re-sending does not restart its clock); a guest of an ACPI-ignoring image, or any guest with
 * `ignoreShutdown` injected, ignores it.
 */
export async function requestShutdown(h: FakeHost, { instanceId }: InstanceRequest): Promise<PowerState> {
  const { ignoreShutdown } = await h.faults.get();
  return h.guests.mutate(instanceId, (state, at) => {
    const guest = requireGuest(state, instanceId);
    if (guest.powerState === PowerState.Running && guest.shutdownRequestedAt === null) {
      if (ignoreShutdown || h.acpiIgnoringImages.has(guest.image.name)) {
        logConsole(guest, at, 'ACPI power button pressed: ignored');
      } else {
        logConsole(guest, at, 'ACPI power button pressed');
        guest.shutdownRequestedAt = at;
        settleGuest(guest, at, h.shutdownSeconds);
      }
    }
    return guest.powerState;
  });
}

/** Forced power-off (virDomainDestroy): immediate, whatever the guest thinks. Idempotent. */
export function powerOff(h: FakeHost, { instanceId }: InstanceRequest): Promise<PowerState> {
  return h.guests.mutate(instanceId, (state, at) => {
    const guest = requireGuest(state, instanceId);
    if (guest.powerState !== PowerState.Shutdown) logConsole(guest, at, 'powered off (forced)');
    guest.powerState = PowerState.Shutdown;
    guest.shutdownRequestedAt = null;
    // A suspended guest's saved memory goes with it (libvirt's destroy undefines its managed save).
    guest.savedMemory = null;
    return guest.powerState;
  });
}

/** Boots a stopped guest. Idempotent: a running guest stays running. */
export function powerOn(h: FakeHost, { instanceId }: InstanceRequest): Promise<PowerState> {
  return h.guests.mutate(instanceId, (state, at) => {
    const guest = requireGuest(state, instanceId);
    powerOnGuest(guest, at);
    return guest.powerState;
  });
}

/** The guest's power state now; throws InstanceNotFound when the host has no such guest. */
export async function getPowerState(h: FakeHost, { instanceId }: InstanceRequest): Promise<PowerState> {
  return requireGuest(await h.guests.readInstance(instanceId), instanceId).powerState;
}

/**
 * Every guest's power state by instance id, moved-aside copies left out. The guests the fault file's
 * `guestPowersOff` names power themselves off first (their own `poweroff`, behind the conductor's back).
 */
export async function getPowerStates(h: FakeHost): Promise<Record<string, PowerState>> {
  const selfPowerOff = await h.faults.takeGuestPowersOff();
  for (const id of selfPowerOff)
    await h.guests.mutate(id, (s, at) => {
      const guest = s.guests[id];
      if (guest?.powerState !== PowerState.Running) return;
      guest.powerState = PowerState.Shutdown;
      guest.shutdownRequestedAt = null;
      logConsole(guest, at, 'reboot: Power down (the guest powered itself off)');
    });
  const state = await h.guests.read();
  return Object.fromEntries(
    Object.entries(state.guests)
      .filter(([key]) => key === state.guests[key]?.instanceId)
      .map(([key, g]) => [key, g.powerState])
  );
}

/** The guest's record of events, its last `lines` when given; InstanceNotFound when the host has no such guest. */
export async function getConsoleOutput(h: FakeHost, { instanceId, lines }: ConsoleOutputRequest): Promise<string> {
  const { console: log } = requireGuest(await h.guests.readInstance(instanceId), instanceId);
  const tail = lines === undefined ? log : lines <= 0 ? [] : log.slice(-lines);
  return tail.map((line) => `${line}\n`).join('');
}

/**
 * Prepares the re-creation of an instance on this host, before `spawn` boots it: Nova's
 * rebuild_block_device_mapping, for a rebuild (the guest is here) and an evacuation (it is not).
 * Checks that the image fits the flavor's root disk before touching anything (FlavorDiskSmallerThanImage
 * leaves the old guest as it was), then removes the old guest while keeping the instance's port (Nova
 * keeps the ports across a rebuild), plugs that port here when this host has none (an evacuation), and
 * lays out the root disk from the image. Idempotent: a repeat finds no guest and lays out the same disk.
 */
export async function prepareRebuild(h: FakeHost, request: BlockDevicesRequest): Promise<RebuildPreparation> {
  const { instanceId, flavor, image } = request;
  checkDiskFits(flavor, image);
  const { removedGuest, network } = await h.guests.mutate(instanceId, (state) => {
    const removed = instanceId in state.guests;
    delete state.guests[instanceId];
    const port = state.networks[instanceId] ?? networkInfoFor(instanceId);
    state.networks[instanceId] = port;
    return { removedGuest: removed, network: port };
  });
  const blockDevices = await prepareBlockDevices(h, request);
  return { removedGuest, network, blockDevices };
}
