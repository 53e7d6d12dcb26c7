/**
 * Names, ids, compute timeouts, scheduler hints and the guest's secrets: what several workflows' inputs
 * share. Built lazily, each the first time it parses (`z.lazy`), like the input schemas (see index.ts):
 * workflow code evaluates this module again for every workflow run, and building these parts every time
 * was most of a build's module evaluation (about a twentieth of the conductor's workflow thread).
 */
import { z } from 'zod';

import { HOST_NAME_PATTERN } from '../host';

/** Host names become task-queue names: DNS labels only, never an arbitrary queue. */
export const HostNameSchema = z.lazy(() =>
  z
    .string()
    .max(63, 'host names are at most 63 characters')
    .regex(HOST_NAME_PATTERN, 'host names are lower-case letters, digits and dashes')
);

export const InstanceIdSchema = z.lazy(() => z.uuid('instance ids are UUIDs'));

/** Names people give instances: printable, no control characters. */
export const InstanceNameSchema = z.lazy(() =>
  z
    .string()
    .min(1)
    .max(255)
    .regex(/^[^\p{Cc}]+$/u, 'names may not contain control characters')
);

export const CatalogueNameSchema = z.lazy(() => z.string().min(1).max(255));

/**
 * Timeouts of activities on a compute host's queue, in seconds, when the workflow input does not say:
 * written only here (the input schemas default to them; src/shared/activity-options.ts builds the
 * activity options from whatever the input carries).
 */
export const DEFAULT_COMPUTE_TIMEOUTS = {
  /** No live worker on the host's queue within this: the host is down (reschedule). */
  scheduleToStartSeconds: 60,
  /**
   * A running compute activity that stays silent this long: the host died mid-task (reschedule). Short
   * steps, heartbeated by the worker every second, use at most 3 s (SHORT_STEP_HEARTBEAT_SECONDS).
   */
  heartbeatSeconds: 30,
  /** The longest a spawn, a disk transfer or another long step may take. */
  longStepSeconds: 30 * 60,
} as const;

/** Compute-queue timeouts a caller may shorten (tests, impatient operators). Seconds. */
export const ComputeTimeoutsSchema = z.lazy(() =>
  z
    .object({
      scheduleToStartSeconds: z.number().positive().max(3600).default(DEFAULT_COMPUTE_TIMEOUTS.scheduleToStartSeconds),
      heartbeatSeconds: z.number().positive().max(3600).default(DEFAULT_COMPUTE_TIMEOUTS.heartbeatSeconds),
      longStepSeconds: z
        .number()
        .positive()
        .max(24 * 3600)
        .default(DEFAULT_COMPUTE_TIMEOUTS.longStepSeconds),
    })
    .strict()
);

/** The most hosts one build or resize may try (`maxAttempts`). */
export const MAX_ATTEMPTS_LIMIT = 10;
/** Server group names (the group's key). */
export const ServerGroupNameSchema = z.lazy(() =>
  z
    .string()
    .min(1)
    .max(255)
    .regex(/^[^\p{Cc}]+$/u, 'names may not contain control characters')
);

export const SchedulerHintsSchema = z.lazy(() =>
  z
    .object({
      /** A server group's name; its policy decides affinity or anti-affinity. */
      group: z.string().min(1).max(255).optional(),
      /** Place on a host that runs one of these instances. */
      sameHost: z.array(InstanceIdSchema).max(100).optional(),
      /** Place away from every host that runs one of these instances. */
      differentHost: z.array(InstanceIdSchema).max(100).optional(),
    })
    .strict()
);

// ----- secrets given to the guest -----

/**
 * Nova's adminPass: the password the hypervisor sets in the guest. It goes to the compute host's spawn
 * (or rebuild) and nowhere else: never written to the store, never in an event, a log or a progress
 * query (the fake hypervisor keeps only that one was set). Encrypted in Temporal's history when the
 * payload codec has a key (src/workers/codec.ts).
 */
export const AdminPasswordSchema = z.lazy(() => z.string().min(1).max(255));
/** Nova's limit on user_data: 65535 characters of base64. */
export const USER_DATA_MAX_LENGTH = 65_535;
/** Nova's user_data: base64 (the guest's cloud-init), at most 65535 characters; handled like adminPassword. */
export const UserDataSchema = z.lazy(() =>
  z
    .string()
    // A regex, not z.base64(): that one calls atob, which the workflow sandbox does not have.
    .regex(/^(?:[A-Za-z0-9+/]{4})*(?:[A-Za-z0-9+/]{2}==|[A-Za-z0-9+/]{3}=)?$/, 'userData must be base64')
    .max(USER_DATA_MAX_LENGTH, `userData is at most ${USER_DATA_MAX_LENGTH} characters of base64`)
);
/** The secret fields, as they travel to the compute host (only those given). */
export interface GuestSecrets {
  adminPassword?: string;
  userData?: string;
}
/** The secret fields of a request, only those given (so a request without them sends nothing new). */
export function guestSecrets(req: GuestSecrets): GuestSecrets {
  return {
    ...(req.adminPassword !== undefined ? { adminPassword: req.adminPassword } : {}),
    ...(req.userData !== undefined ? { userData: req.userData } : {}),
  };
}

export type ComputeTimeoutsInput = z.output<typeof ComputeTimeoutsSchema>;
