/** The `liveMigrate` workflow's input and Nova's live-migration defaults. Built lazily: see index.ts. */
import { z } from 'zod';

import { ComputeTimeoutsSchema, DEFAULT_COMPUTE_TIMEOUTS, HostNameSchema, InstanceIdSchema } from './common';

// ----- live migration -----

/** Nova's [libvirt] live_migration_downtime (ms), _steps and completion_timeout (s per GiB), migrate_max_retries. */
export const DEFAULT_LIVE_MIGRATION = {
  maxDowntimeMs: 500,
  downtimeSteps: 10,
  completionTimeoutSecondsPerGb: 800,
  /** -1: until the hosts run out (Nova's default). */
  migrateMaxRetries: -1,
} as const;

/** The most hosts the scheduler returns for one instance (RequestSpec's maxAttempts). */
export const MAX_SCHEDULER_ATTEMPTS = 10;

/**
 * The hosts a live migration asks the scheduler for: the chosen one and its alternates.
 * NOTE(nova): migrate_max_retries -1 tries until the hosts run out; here the scheduler returns at most
 * MAX_SCHEDULER_ATTEMPTS hosts, so -1 (and any larger value) tries at most that many.
 */
export function liveMigrationAttempts(migrateMaxRetries: number): number {
  return migrateMaxRetries < 0 ? MAX_SCHEDULER_ATTEMPTS : Math.min(migrateMaxRetries + 1, MAX_SCHEDULER_ATTEMPTS);
}

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
      /** Alternates tried after a failed pre-check (Nova's migrate_max_retries; -1: until the hosts run out). */
      migrateMaxRetries: z.number().int().min(-1).max(20).default(DEFAULT_LIVE_MIGRATION.migrateMaxRetries),
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
