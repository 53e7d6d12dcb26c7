import { z } from 'zod';

import { HOST_NAME_PATTERN } from './host';
import { TRAIT_PATTERN } from './resources';

/** One compute host as a user describes it in the fleet file. */
export const HostSpecSchema = z.object({
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
});
export type HostSpec = z.infer<typeof HostSpecSchema>;

export const FleetSchema = z
  .object({ hosts: z.array(HostSpecSchema).min(1) })
  .refine((f) => new Set(f.hosts.map((h) => h.name)).size === f.hosts.length, 'host names must be unique');
export type Fleet = z.infer<typeof FleetSchema>;
