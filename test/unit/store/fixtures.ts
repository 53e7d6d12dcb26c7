import { type HostSpec, HostSpecSchema } from '../../../src/domain/fleet';
import type { InstanceRecord } from '../../../src/domain/instance';
import type { Resources } from '../../../src/domain/resources';
import type { NewInstance } from '../../../src/store/instances';

/** A host spec with the fleet file's defaults (reserved 512 MB, VCPU ratio 4.0) unless overridden. */
export function hostSpec(name: string, overrides: Partial<Record<keyof HostSpec, unknown>> = {}): HostSpec {
  return HostSpecSchema.parse({ name, vcpus: 16, memoryMb: 65536, diskGb: 1000, ...overrides });
}

/** A host with exactly `vcpus` claimable VCPUs and plenty of everything else. */
export function plainHost(
  name: string,
  vcpus: number,
  overrides: Partial<Record<keyof HostSpec, unknown>> = {}
): HostSpec {
  return hostSpec(name, {
    vcpus,
    memoryMb: 1_000_000,
    diskGb: 100_000,
    reserved: { vcpus: 0, memoryMb: 0, diskGb: 0 },
    allocationRatio: { vcpus: 1, memoryMb: 1, diskGb: 1 },
    ...overrides,
  });
}

export function res(VCPU: number, MEMORY_MB = 0, DISK_GB = 0): Resources {
  return { VCPU, MEMORY_MB, DISK_GB };
}

export function newInstance(instanceId: string, overrides: Partial<InstanceRecord> = {}): NewInstance {
  return {
    instanceId,
    name: `vm-${instanceId}`,
    vmState: 'building',
    taskState: 'scheduling',
    powerState: 'nostate',
    host: null,
    availabilityZone: null,
    flavor: 'm1.small',
    image: 'cirros',
    vcpus: 1,
    memoryMb: 2048,
    diskGb: 20,
    serverGroup: null,
    ...overrides,
  };
}
