import { z } from 'zod';

import { HOST_NAME_PATTERN } from './host';
import { TRAIT_PATTERN } from './resources';

/** The virt drivers a compute host can run (COMPUTE_DRIVER, or a fleet host's `driver`). */
export const COMPUTE_DRIVER_KINDS = ['fake', 'qemu'] as const;
export type ComputeDriverKind = (typeof COMPUTE_DRIVER_KINDS)[number];

/**
 * One compute host as a user describes it in the fleet file. Built the first time it parses (`z.lazy`):
 * workflow code (registerHost) evaluates this module again for every workflow run.
 */
export const HostSpecSchema = z.lazy(() =>
  z.object({
    name: z.string().regex(HOST_NAME_PATTERN, 'host names are lower-case DNS labels of at most 63 characters'),
    availabilityZone: z.string().min(1).max(255).default('nova'),
    architecture: z.string().min(1).max(32).default('x86_64'),
    vcpus: z.number().int().positive(),
    memoryMb: z.number().int().positive(),
    diskGb: z.number().int().positive(),
    reserved: z
      .object({
        vcpus: z.number().int().nonnegative().default(0),
        memoryMb: z.number().int().nonnegative().default(512),
        diskGb: z.number().int().nonnegative().default(0),
      })
      .default({ vcpus: 0, memoryMb: 512, diskGb: 0 }),
    allocationRatio: z
      .object({
        vcpus: z.number().positive().default(4.0),
        memoryMb: z.number().positive().default(1.0),
        diskGb: z.number().positive().default(1.0),
      })
      .default({ vcpus: 4.0, memoryMb: 1.0, diskGb: 1.0 }),
    traits: z.array(z.string().regex(TRAIT_PATTERN)).default([]),
    /** The host's virt driver; absent: the compute worker's COMPUTE_DRIVER. */
    driver: z.enum(COMPUTE_DRIVER_KINDS).optional(),
    /** Nova's max_concurrent_builds for this host (0: no limit); absent: COMPUTE_MAX_CONCURRENT_BUILDS. */
    maxConcurrentBuilds: z.number().int().nonnegative().optional(),
    /** Nova's max_concurrent_live_migrations (0: no limit); absent: COMPUTE_MAX_CONCURRENT_LIVE_MIGRATIONS. */
    maxConcurrentLiveMigrations: z.number().int().nonnegative().optional(),
  })
);
export type HostSpec = z.infer<typeof HostSpecSchema>;

export const FleetSchema = z.lazy(() =>
  z
    .object({ hosts: z.array(HostSpecSchema).min(1) })
    .refine((f) => new Set(f.hosts.map((h) => h.name)).size === f.hosts.length, 'host names must be unique')
);
export type Fleet = z.infer<typeof FleetSchema>;

/** Ranges in a host list are bounded, so a typo cannot ask one process for millions of workers. */
export const MAX_HOSTS_PER_LIST = 10_000;

/**
 * The hosts a list names (COMPUTE_HOSTS): comma-separated names and ranges `<prefix><a>..<prefix><b>`
 * (`node-1..node-1000`: node-1, node-2, … node-1000; the prefix is repeated on the right or left out:
 * `node-1..1000`). Order is kept, duplicates dropped. Throws with the offending item on a bad name or range.
 */
export function parseHostList(list: string): string[] {
  const hosts = new Set<string>();
  for (const raw of list.split(',')) {
    const item = raw.trim();
    if (item === '') continue;
    const range = /^(.*?)(\d+)\.\.(.*?)(\d+)$/.exec(item);
    if (range) {
      const [, prefix = '', fromText = '', rightPrefix = '', toText = ''] = range;
      if (rightPrefix !== '' && rightPrefix !== prefix)
        throw new Error(`host range '${item}': both ends must have the same prefix`);
      const from = Number(fromText);
      const to = Number(toText);
      if (to < from) throw new Error(`host range '${item}' is empty (${from} > ${to})`);
      if (to - from + 1 + hosts.size > MAX_HOSTS_PER_LIST)
        throw new Error(`host list '${list}' names more than ${MAX_HOSTS_PER_LIST} hosts`);
      for (let n = from; n <= to; n++) hosts.add(checkedHostName(`${prefix}${n}`, item));
    } else {
      hosts.add(checkedHostName(item, item));
    }
    if (hosts.size > MAX_HOSTS_PER_LIST)
      throw new Error(`host list '${list}' names more than ${MAX_HOSTS_PER_LIST} hosts`);
  }
  if (hosts.size === 0) throw new Error('the host list is empty');
  return [...hosts];
}

function checkedHostName(name: string, item: string): string {
  if (!HOST_NAME_PATTERN.test(name)) throw new Error(`host list item '${item}': '${name}' is not a valid host name`);
  return name;
}

/** A flavor of generated host: every host of a generated fleet has this shape. */
export interface GeneratedHostShape {
  vcpus: number;
  memoryMb: number;
  diskGb: number;
  /** Hosts are spread round-robin over this many availability zones, az1 … azN. */
  zones: number;
  traits: string[];
}

/** The default generated host: the default fleet's node-1 (16 vCPUs, 64 GiB, 1 TB, AVX2). */
export const DEFAULT_GENERATED_HOST: GeneratedHostShape = {
  vcpus: 16,
  memoryMb: 65_536,
  diskGb: 1000,
  zones: 2,
  traits: ['HW_CPU_X86_AVX2'],
};

/** A fleet of `count` hosts `<prefix>1` … `<prefix><count>`, all of one shape (pure: same input, same fleet). */
export function generateFleet(
  count: number,
  prefix = 'node-',
  shape: GeneratedHostShape = DEFAULT_GENERATED_HOST
): Fleet {
  if (!Number.isInteger(count) || count < 1 || count > MAX_HOSTS_PER_LIST)
    throw new Error(`a generated fleet has 1 to ${MAX_HOSTS_PER_LIST} hosts, not ${count}`);
  const hosts = Array.from({ length: count }, (_, i) =>
    HostSpecSchema.parse({
      name: `${prefix}${i + 1}`,
      availabilityZone: `az${(i % Math.max(1, shape.zones)) + 1}`,
      vcpus: shape.vcpus,
      memoryMb: shape.memoryMb,
      diskGb: shape.diskGb,
      traits: shape.traits,
    })
  );
  return FleetSchema.parse({ hosts });
}
