/**
 * Zod schemas of every workflow's input. Workflows parse their input first thing, so bad input fails
 * as InvalidRequest naming the field before anything is claimed or written; clients parse the same
 * schemas before starting a workflow.
 *
 * Each workflow's input schema is built the first time it parses (`z.lazy`): workflow code evaluates
 * this module again for every workflow run, which would otherwise build every workflow's schema to
 * parse one input.
 */
import { z } from 'zod';

import { HOST_NAME_PATTERN } from './host';

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
export const ComputeTimeoutsSchema = z
  .object({
    scheduleToStartSeconds: z.number().positive().max(3600).default(DEFAULT_COMPUTE_TIMEOUTS.scheduleToStartSeconds),
    heartbeatSeconds: z.number().positive().max(3600).default(DEFAULT_COMPUTE_TIMEOUTS.heartbeatSeconds),
    longStepSeconds: z
      .number()
      .positive()
      .max(24 * 3600)
      .default(DEFAULT_COMPUTE_TIMEOUTS.longStepSeconds),
  })
  .strict();

/** The most hosts one build or resize may try (`maxAttempts`). */
export const MAX_ATTEMPTS_LIMIT = 10;
/** Server group names (the group's key). */
export const ServerGroupNameSchema = z
  .string()
  .min(1)
  .max(255)
  .regex(/^[^\p{Cc}]+$/u, 'names may not contain control characters');

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

/** At most this many instances in one multi-create request. */
export const MAX_BATCH_SIZE = 50;
const BatchCountSchema = z.number().int().min(1).max(MAX_BATCH_SIZE);

/** A multi-create child's placement, chosen by its parent's one scheduler call. */
export const ScheduledPlacementSchema = z
  .object({
    /** The chosen host (claimed) then the alternates. */
    hosts: z.array(HostNameSchema).min(1).max(10),
    resources: z
      .object({
        VCPU: z.number().int().nonnegative(),
        MEMORY_MB: z.number().int().nonnegative(),
        DISK_GB: z.number().int().nonnegative(),
      })
      .strict(),
    hostZones: z.record(z.string(), z.string()),
  })
  .strict();
export type ScheduledPlacement = z.output<typeof ScheduledPlacementSchema>;

/**
 * How many instances a build asks for (Nova's min_count / max_count): `count` is both; maxCount defaults
 * to minCount and minCount to 1; nothing given is one instance.
 */
export function batchSize(i: { count?: number; minCount?: number; maxCount?: number }): { min: number; max: number } {
  if (i.count !== undefined) return { min: i.count, max: i.count };
  const min = i.minCount ?? 1;
  return { min, max: i.maxCount ?? min };
}

/** The `serverGroup` workflow's input: one action on the server groups (Nova's os-server-groups API). */
export const ServerGroupInputSchema = z.lazy(() =>
  z.discriminatedUnion('action', [
    z
      .object({
        action: z.literal('create'),
        name: ServerGroupNameSchema,
        policy: z.enum(['affinity', 'anti-affinity'], { message: "policy is 'affinity' or 'anti-affinity'" }),
      })
      .strict(),
    z.object({ action: z.literal('list') }).strict(),
    z.object({ action: z.literal('show'), name: ServerGroupNameSchema }).strict(),
    z.object({ action: z.literal('delete'), name: ServerGroupNameSchema }).strict(),
  ])
);
export type ServerGroupInput = z.input<typeof ServerGroupInputSchema>;

// ----- secrets given to the guest -----

/**
 * Nova's adminPass: the password the hypervisor sets in the guest. It goes to the compute host's spawn
 * (or rebuild) and nowhere else: never written to the store, never in an event, a log or a progress
 * query (the fake hypervisor keeps only that one was set). Encrypted in Temporal's history when the
 * payload codec has a key (src/workers/codec.ts).
 */
export const AdminPasswordSchema = z.string().min(1).max(255);
/** Nova's limit on user_data: 65535 characters of base64. */
export const USER_DATA_MAX_LENGTH = 65_535;
/** Nova's user_data: base64 (the guest's cloud-init), at most 65535 characters; handled like adminPassword. */
export const UserDataSchema = z
  .string()
  // A regex, not z.base64(): that one calls atob, which the workflow sandbox does not have.
  .regex(/^(?:[A-Za-z0-9+/]{4})*(?:[A-Za-z0-9+/]{2}==|[A-Za-z0-9+/]{3}=)?$/, 'userData must be base64')
  .max(USER_DATA_MAX_LENGTH, `userData is at most ${USER_DATA_MAX_LENGTH} characters of base64`);
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

export const BuildInstanceInputSchema = z.lazy(() =>
  z
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
      maxAttempts: z.number().int().min(1).max(MAX_ATTEMPTS_LIMIT).default(3),
      timeouts: ComputeTimeoutsSchema.default(DEFAULT_COMPUTE_TIMEOUTS),
      /** Multi-create: exactly this many instances (Nova's min_count = max_count). */
      count: BatchCountSchema.optional(),
      /** Multi-create: build at least this many, or none (all or nothing). */
      minCount: BatchCountSchema.optional(),
      /** Multi-create: build at most this many, as many as there is room for (default: minCount). */
      maxCount: BatchCountSchema.optional(),
      /**
       * Set by a multi-create parent for each of its children, never by a caller: the hosts the one
       * scheduler call chose for this instance (the first already claimed), so the child does not schedule.
       */
      scheduled: ScheduledPlacementSchema.optional(),
      /** Nova's adminPass; every instance of a multi-create gets the same (as in Nova). */
      adminPassword: AdminPasswordSchema.optional(),
      /** Nova's user_data (base64). */
      userData: UserDataSchema.optional(),
    })
    .strict()
    .refine((i) => !(i.host && i.forceHost), { message: 'give host or forceHost, not both', path: ['forceHost'] })
    .refine((i) => i.count === undefined || (i.minCount === undefined && i.maxCount === undefined), {
      message: 'give count, or minCount and maxCount, not both',
      path: ['count'],
    })
    .refine((i) => i.minCount === undefined || i.maxCount === undefined || i.maxCount >= i.minCount, {
      message: 'maxCount must be at least minCount',
      path: ['maxCount'],
    })
    .refine((i) => batchSize(i).max === 1 || i.instanceId === undefined, {
      message: 'an instanceId names one instance; leave it out when building several',
      path: ['instanceId'],
    })
    .refine((i) => batchSize(i).max === 1 || i.name.length <= 250, {
      message: 'names of several instances take a suffix (-1, -2 …): at most 250 characters',
      path: ['name'],
    })
    .refine((i) => i.scheduled === undefined || i.instanceId !== undefined, {
      message: 'a pre-scheduled build names its instanceId',
      path: ['scheduled'],
    })
    .refine((i) => batchSize(i).max === 1 || i.scheduled === undefined, {
      message: 'a pre-scheduled build is one instance',
      path: ['scheduled'],
    })
);
export type BuildInstanceInput = z.input<typeof BuildInstanceInputSchema>;
export type BuildInstanceRequest = z.output<typeof BuildInstanceInputSchema>;
export type ComputeTimeoutsInput = z.output<typeof ComputeTimeoutsSchema>;

/** Nova's `[DEFAULT] shutdown_timeout`: seconds a graceful shutdown may take before a forced power-off. */
export const DEFAULT_SHUTDOWN_TIMEOUT_SECONDS = 60;
/** Nova's `[compute] shutdown_retry_interval`: seconds between ACPI shutdown requests. */
export const DEFAULT_SHUTDOWN_RETRY_INTERVAL_SECONDS = 10;

const ShutdownTimeoutSchema = z.number().int().nonnegative().max(3600);

export const StopInputSchema = z.lazy(() =>
  z
    .object({
      instanceId: InstanceIdSchema,
      /** Overrides the image's and the default timeout (60 s). 0 powers off at once (Nova's clean_shutdown=False). */
      shutdownTimeoutSeconds: ShutdownTimeoutSchema.optional(),
      /**
       * The image's `os_shutdown_timeout` (catalogue `properties.osShutdownTimeout`), which wins over the
       * default. NOTE(nova): Nova copies it into the instance's system metadata at build; the instance
       * record here keeps only the image's name, so the caller passes it.
       */
      imageOsShutdownTimeoutSeconds: ShutdownTimeoutSchema.optional(),
      /** Seconds between ACPI shutdown requests (and power-state checks). */
      shutdownRetryIntervalSeconds: z
        .number()
        .int()
        .positive()
        .max(3600)
        .default(DEFAULT_SHUTDOWN_RETRY_INTERVAL_SECONDS),
      timeouts: ComputeTimeoutsSchema.default(DEFAULT_COMPUTE_TIMEOUTS),
    })
    .strict()
);
export type StopInput = z.input<typeof StopInputSchema>;
export type StopRequest = z.output<typeof StopInputSchema>;

export const StartInputSchema = z.lazy(() =>
  z
    .object({
      instanceId: InstanceIdSchema,
      timeouts: ComputeTimeoutsSchema.default(DEFAULT_COMPUTE_TIMEOUTS),
    })
    .strict()
);
export type StartInput = z.input<typeof StartInputSchema>;

// ----- rebuild / evacuate -----

export const RebuildInputSchema = z.lazy(() =>
  z
    .object({
      instanceId: InstanceIdSchema,
      /** The image to rebuild with (a catalogue name); defaults to the instance's current image. */
      image: CatalogueNameSchema.optional(),
      /**
       * Evacuate (Nova's rebuild_instance with recreate=True): re-create the instance on another host because
       * its own host is down. Rebuilds with the current image.
       */
      evacuate: z.boolean().default(false),
      /** Evacuate only: the requested destination, claimed directly (never the instance's own host). */
      host: HostNameSchema.optional(),
      timeouts: ComputeTimeoutsSchema.default(DEFAULT_COMPUTE_TIMEOUTS),
      /** Nova's adminPass for the rebuilt guest (rebuild and evacuate). */
      adminPassword: AdminPasswordSchema.optional(),
      /**
       * Nova's user_data for the rebuilt guest. NOTE(nova): Nova keeps user_data in the instance record
       * and a rebuild without it reuses the stored one; here it is never stored, so a rebuild gets only
       * what it is given.
       */
      userData: UserDataSchema.optional(),
    })
    .strict()
    .refine((i) => i.evacuate || i.host === undefined, { message: 'a host is given only to evacuate', path: ['host'] })
    .refine((i) => !(i.evacuate && i.image !== undefined), {
      message: 'an evacuation re-creates the instance from its current image; give no image',
      path: ['image'],
    })
);
export type RebuildInput = z.input<typeof RebuildInputSchema>;
export type RebuildRequest = z.output<typeof RebuildInputSchema>;

// ----- live migration -----

/** Nova's [libvirt] live_migration_downtime (ms), _steps and completion_timeout (s per GiB), migrate_max_retries. */
export const DEFAULT_LIVE_MIGRATION = {
  maxDowntimeMs: 500,
  downtimeSteps: 10,
  completionTimeoutSecondsPerGb: 800,
  migrateMaxRetries: 3,
} as const;

export const LiveMigrateInputSchema = z.lazy(() =>
  z
    .object({
      instanceId: InstanceIdSchema,
      /** A requested destination; the scheduler's filters still check it unless `force`. */
      host: HostNameSchema.optional(),
      /** With `host`: skip the scheduler's filters (Nova's force=True). */
      force: z.boolean().default(false),
      /**
       * Copy the disks with the memory (true), or rely on storage the hosts share (false). `auto` (Nova's
       * default): a block migration unless the hosts share storage; the fake's hosts share none.
       */
      blockMigration: z.union([z.boolean(), z.literal('auto')]).default('auto'),
      /** Alternates tried after a failed pre-check (Nova's migrate_max_retries). */
      migrateMaxRetries: z.number().int().nonnegative().max(20).default(DEFAULT_LIVE_MIGRATION.migrateMaxRetries),
      maxDowntimeMs: z.number().int().positive().max(60_000).default(DEFAULT_LIVE_MIGRATION.maxDowntimeMs),
      downtimeSteps: z.number().int().positive().max(100).default(DEFAULT_LIVE_MIGRATION.downtimeSteps),
      completionTimeoutSecondsPerGb: z
        .number()
        .positive()
        .max(86_400)
        .default(DEFAULT_LIVE_MIGRATION.completionTimeoutSecondsPerGb),
      timeouts: ComputeTimeoutsSchema.default(DEFAULT_COMPUTE_TIMEOUTS),
    })
    .strict()
    .refine((r) => !r.force || r.host !== undefined, { message: 'force needs a host', path: ['force'] })
);
export type LiveMigrateInput = z.input<typeof LiveMigrateInputSchema>;
export type LiveMigrateRequest = z.output<typeof LiveMigrateInputSchema>;

/** Nova's terminate_instance: the seconds a delete waits for the operation it cancelled to let go. */
export const DEFAULT_HOLDER_WAIT_SECONDS = 300;

export const DeleteInstanceInputSchema = z.lazy(() =>
  z
    .object({
      instanceId: InstanceIdSchema,
      /**
       * How long to wait for the operation holding the instance to roll back once cancelled; after that
       * the delete takes the instance over anyway (the operation's later writes then fail their
       * compare-and-swap, and whatever it leaves on a host the host's reconciliation destroys).
       */
      holderWaitSeconds: z.number().int().positive().max(86_400).default(DEFAULT_HOLDER_WAIT_SECONDS),
      timeouts: ComputeTimeoutsSchema.default(DEFAULT_COMPUTE_TIMEOUTS),
    })
    .strict()
);
export type DeleteInstanceInput = z.input<typeof DeleteInstanceInputSchema>;

export const ReconcileHostInputSchema = z.lazy(() =>
  z
    .object({
      host: HostNameSchema,
      timeouts: ComputeTimeoutsSchema.default(DEFAULT_COMPUTE_TIMEOUTS),
    })
    .strict()
);
export type ReconcileHostInput = z.input<typeof ReconcileHostInputSchema>;

/**
 * An operator's switch on a compute host's service (Nova's `openstack compute service set`): `disabled`
 * (the scheduler's ComputeFilter skips the host; a reason only with `disabled: true`) and `forcedDown`
 * (reported down whatever its liveness, so its instances may be evacuated). Neither: the state as it is.
 */
export const SetHostServiceInputSchema = z.lazy(() =>
  z
    .object({
      host: HostNameSchema,
      disabled: z.boolean().optional(),
      disabledReason: z.string().min(1).max(255).optional(),
      forcedDown: z.boolean().optional(),
    })
    .strict()
    .refine((i) => i.disabledReason === undefined || i.disabled === true, {
      message: 'a reason is given only to disable a host',
      path: ['disabledReason'],
    })
);
export type SetHostServiceInput = z.input<typeof SetHostServiceInputSchema>;

export const HostGuestsInputSchema = z.lazy(() =>
  z
    .object({
      hosts: z.array(HostNameSchema).max(10_000),
      timeouts: ComputeTimeoutsSchema.default(DEFAULT_COMPUTE_TIMEOUTS),
    })
    .strict()
);
export type HostGuestsInput = z.input<typeof HostGuestsInputSchema>;

/** The longest console tail a caller may ask for (Nova's console log `--length`). */
export const MAX_CONSOLE_LINES = 10_000;

export const ConsoleOutputInputSchema = z.lazy(() =>
  z
    .object({
      instanceId: InstanceIdSchema,
      /** Only the last N lines of the guest's console; all of it when absent. */
      lines: z.number().int().nonnegative().max(MAX_CONSOLE_LINES).optional(),
      timeouts: ComputeTimeoutsSchema.default(DEFAULT_COMPUTE_TIMEOUTS),
    })
    .strict()
);
export type ConsoleOutputInput = z.input<typeof ConsoleOutputInputSchema>;

// ----- resize / migrate -----

/** Seconds a resized instance waits for confirmResize / revertResize before it confirms itself. */
export const DEFAULT_RESIZE_CONFIRM_WINDOW_SECONDS = 86_400;

export const ResizeMigrateInputSchema = z.lazy(() =>
  z
    .object({
      instanceId: InstanceIdSchema,
      /** The new flavor (a catalogue name): a resize. Absent, or the instance's own flavor: a cold migration. */
      flavor: CatalogueNameSchema.optional(),
      /** The requested destination; the filters still run and there is no reschedule elsewhere. */
      host: HostNameSchema.optional(),
      /** May the instance's own host be the destination (Nova's allow_resize_to_same_host, default False). */
      allowSameHost: z.boolean().default(false),
      /** Hosts tried at most, counting the first (Nova's [scheduler] max_attempts). */
      maxAttempts: z.number().int().min(1).max(MAX_ATTEMPTS_LIMIT).default(3),
      /**
       * Seconds the resized instance (VERIFY_RESIZE) waits for confirmResize or revertResize before it is
       * confirmed automatically; 0 waits indefinitely. NOTE(nova): resize_confirm_window, whose default
       * there is 0 (never auto-confirm).
       */
      confirmWindowSeconds: z
        .number()
        .int()
        .nonnegative()
        .max(365 * 86_400)
        .default(DEFAULT_RESIZE_CONFIRM_WINDOW_SECONDS),
      timeouts: ComputeTimeoutsSchema.default(DEFAULT_COMPUTE_TIMEOUTS),
    })
    .strict()
);
export type ResizeMigrateInput = z.input<typeof ResizeMigrateInputSchema>;
export type ResizeMigrateRequest = z.output<typeof ResizeMigrateInputSchema>;

// ----- reconcile / reset-state -----

/** Instances (and hosts) the reconciler reads and heals per batch. */
export const DEFAULT_RECONCILE_BATCH_SIZE = 100;

export const ReconcileInputSchema = z.lazy(() =>
  z
    .object({
      /** Decide and report, change nothing. */
      dryRun: z.boolean().default(false),
      /** Instances, then hosts, read per batch; the workflow continues as new when its history grows. */
      batchSize: z.number().int().min(1).max(1000).default(DEFAULT_RECONCILE_BATCH_SIZE),
      /** Batches one run of the workflow handles before it continues as new (its history stays bounded). */
      batchesPerRun: z.number().int().min(1).max(1000).default(50),
      /** Compute-queue timeouts of the clean-up calls (a down host gives up within the clean-up bound). */
      timeouts: ComputeTimeoutsSchema.default(DEFAULT_COMPUTE_TIMEOUTS),
      /** Set by the workflow itself when it continues as new: where it was, and what it decided so far. */
      resume: z
        .object({
          phase: z.enum(['instances', 'hosts']),
          after: z.string().max(255).nullable(),
          decisions: z.array(z.looseObject({ kind: z.string(), subject: z.string() })).max(10_000),
          dropped: z.number().int().nonnegative(),
          batches: z.number().int().nonnegative(),
        })
        .strict()
        .optional(),
    })
    .strict()
);
export type ReconcileInput = z.input<typeof ReconcileInputSchema>;
export type ReconcileRequest = z.output<typeof ReconcileInputSchema>;

export const ResetStateInputSchema = z.lazy(() =>
  z
    .object({
      instanceId: InstanceIdSchema,
      /** Nova's reset-state: `error` (the default there) or `active` (its --active). */
      state: z.enum(['active', 'error']),
    })
    .strict()
);
export type ResetStateInput = z.input<typeof ResetStateInputSchema>;
