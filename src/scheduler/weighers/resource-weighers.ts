import { capacity } from '../../domain/resources';
import type { HostWeigher } from './host-weigher';

/** Free RAM, capacity minus used (nova/scheduler/weights/ram.py). */
export const RAMWeigher: HostWeigher = {
  name: 'RAMWeigher',
  weigh: (host) => capacity(host.inventories.MEMORY_MB) - host.used.MEMORY_MB,
  multiplier: (config) => config.ramWeightMultiplier,
};

/** Free vCPUs, capacity minus used (nova/scheduler/weights/cpu.py). */
export const CPUWeigher: HostWeigher = {
  name: 'CPUWeigher',
  weigh: (host) => capacity(host.inventories.VCPU) - host.used.VCPU,
  multiplier: (config) => config.cpuWeightMultiplier,
};

/** Free disk, capacity minus used (nova/scheduler/weights/disk.py). */
export const DiskWeigher: HostWeigher = {
  name: 'DiskWeigher',
  weigh: (host) => capacity(host.inventories.DISK_GB) - host.used.DISK_GB,
  multiplier: (config) => config.diskWeightMultiplier,
};
