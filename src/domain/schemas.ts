/**
 * Zod schemas of every workflow's input. Workflows parse their input first thing, so bad input fails
 * as InvalidRequest naming the field before anything is claimed or written; clients parse the same
 * schemas before starting a workflow.
 */
import { z } from 'zod';

import { HOST_NAME_PATTERN } from '../shared/task-queues';

/** Host names become task-queue names: DNS labels only, never an arbitrary queue. */
export const HostNameSchema = z
  .string()
  .max(63, 'host names are at most 63 characters')
  .regex(HOST_NAME_PATTERN, 'host names are lower-case letters, digits and dashes');

export const InstanceIdSchema = z.uuid('instance ids are UUIDs');

/** Names people give instances: printable, no control characters. */
export const InstanceNameSchema = z
  .string()
  .min(1)
  .max(255)
  .regex(/^[^\p{Cc}]+$/u, 'names may not contain control characters');

const CatalogueNameSchema = z.string().min(1).max(255);

/** Compute-queue timeouts a caller may shorten (tests, impatient operators). Seconds. */
export const ComputeTimeoutsSchema = z
  .object({
    scheduleToStartSeconds: z.number().positive().max(3600).default(60),
    heartbeatSeconds: z.number().positive().max(3600).default(30),
    longStepSeconds: z
      .number()
      .positive()
      .max(24 * 3600)
      .default(1800),
  })
  .strict();

export const SchedulerHintsSchema = z
  .object({
    /** A server group's name; its policy decides affinity or anti-affinity. */
    group: z.string().min(1).max(255).optional(),
    /** Place on a host that runs one of these instances. */
    sameHost: z.array(InstanceIdSchema).max(100).optional(),
    /** Place away from every host that runs one of these instances. */
    differentHost: z.array(InstanceIdSchema).max(100).optional(),
  })
  .strict();

export const BuildInstanceInputSchema = z
  .object({
    name: InstanceNameSchema,
    flavor: CatalogueNameSchema,
    image: CatalogueNameSchema,
    /** Defaults to a fresh UUID. */
    instanceId: InstanceIdSchema.optional(),
    availabilityZone: z.string().min(1).max(255).optional(),
    schedulerHints: SchedulerHintsSchema.default({}),
    /** Build on this host, still checking the filters; no reschedule elsewhere. */
    host: HostNameSchema.optional(),
    /** Build on this host, bypassing the filters (Nova's forced host); no reschedule. */
    forceHost: HostNameSchema.optional(),
    /** Hosts tried at most, counting the first (Nova's [scheduler] max_attempts). */
    maxAttempts: z.number().int().min(1).max(10).default(3),
    timeouts: ComputeTimeoutsSchema.default({
      scheduleToStartSeconds: 60,
      heartbeatSeconds: 30,
      longStepSeconds: 1800,
    }),
  })
  .strict()
  .refine((i) => !(i.host && i.forceHost), { message: 'give host or forceHost, not both', path: ['forceHost'] });
export type BuildInstanceInput = z.input<typeof BuildInstanceInputSchema>;
export type BuildInstanceRequest = z.output<typeof BuildInstanceInputSchema>;
export type ComputeTimeoutsInput = z.output<typeof ComputeTimeoutsSchema>;
