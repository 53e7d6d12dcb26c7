/**
 * Guests and what they are made of, as every driver reports them (src/compute/driver.ts re-exports these).
 */
import { z } from 'zod';

import type { Flavor, Image } from '../domain/catalogue';
import { PowerState } from '../domain/instance';

// ---------------------------------------------------------------------------------------------------
// Guests and what they are made of (reported by listGuests).

export const GuestFlavorSchema = z.object({
  name: z.string(),
  vcpus: z.number(),
  memoryMb: z.number(),
  diskGb: z.number(),
});
/** What the driver needs of a flavor; a full catalogue `Flavor` fits. */
export type GuestFlavor = Pick<Flavor, 'name' | 'vcpus' | 'memoryMb' | 'diskGb'>;

export const GuestImageSchema = z.object({ name: z.string(), sizeGb: z.number() });
/** What the driver needs of an image; a full catalogue `Image` fits. */
export type GuestImage = Pick<Image, 'name' | 'sizeGb'>;

export const NetworkInfoSchema = z.object({
  network: z.string(),
  portId: z.string(),
  mac: z.string(),
  ip: z.string(),
});
/** One port on the tenant network; deterministic per instance (the same on every host). */
export type NetworkInfo = z.infer<typeof NetworkInfoSchema>;

export const BlockDeviceInfoSchema = z.object({
  rootDeviceName: z.string(),
  devices: z.array(
    z.object({
      deviceName: z.string(),
      bootIndex: z.number().int(),
      sourceType: z.literal('image'),
      destinationType: z.literal('local'),
      imageName: z.string(),
      sizeGb: z.number(),
    })
  ),
});
export type BlockDeviceInfo = z.infer<typeof BlockDeviceInfoSchema>;

/**
 * A guest as every driver reports it (Nova's InstanceInfo plus what this project's reconcile and tests
 * read). Driver-neutral: a driver's own bookkeeping (the fake's spawn ids and shutdown timestamps, a QEMU
 * driver's pid and QMP socket) lives in its own record type, never here.
 */
export const GuestSchema = z.object({
  instanceId: z.string(),
  name: z.string(),
  host: z.string(),
  flavor: GuestFlavorSchema,
  image: GuestImageSchema,
  powerState: z.enum(PowerState),
  network: NetworkInfoSchema.nullable(),
  blockDevices: BlockDeviceInfoSchema.nullable(),
  /** ISO timestamp. */
  createdAt: z.string(),
  /**
   * What the guest was given of its secrets, never the secrets: whether an admin password was set, and
   * the SHA-256 (hex) of its user data. Absent: none given.
   */
  adminPasswordSet: z.boolean().optional(),
  userDataSha256: z.string().optional(),
});
export type Guest = z.infer<typeof GuestSchema>;
