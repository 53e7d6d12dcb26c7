/**
 * Guests and what they are made of, as every driver reports them (src/compute/driver.ts re-exports these).
 */
import { createHash } from 'node:crypto';

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

// ---------------------------------------------------------------------------------------------------
// What every driver lays out the same way: the instance's port and its image-backed root disk.

/** A deterministic port for an instance: OpenStack's fa:16:3e MAC prefix and an address in 10.0.0.0/8. */
export function networkInfoFor(instanceId: string): NetworkInfo {
  const digest = createHash('sha256').update(instanceId).digest();
  const byte = (i: number): number => digest[i] ?? 0;
  const hex = (i: number): string => byte(i).toString(16).padStart(2, '0');
  return {
    network: 'private',
    portId: [
      digest.subarray(4, 8),
      digest.subarray(8, 10),
      digest.subarray(10, 12),
      digest.subarray(12, 14),
      digest.subarray(14, 20),
    ]
      .map((part) => part.toString('hex'))
      .join('-'),
    mac: `fa:16:3e:${hex(0)}:${hex(1)}:${hex(2)}`,
    ip: `10.${byte(1)}.${byte(2)}.${2 + (byte(3) % 252)}`,
  };
}

/** The root disk's size in GB: the flavor's, or (a 0 GB flavor disk, Nova's rule) the image's, at least 1. */
export function rootDiskGb(flavor: GuestFlavor, image: GuestImage): number {
  return flavor.diskGb > 0 ? flavor.diskGb : Math.max(1, Math.ceil(image.sizeGb));
}

/** The local root disk a guest of this flavor boots from this image. */
export function rootDiskFor(flavor: GuestFlavor, image: GuestImage): BlockDeviceInfo {
  return {
    rootDeviceName: '/dev/vda',
    devices: [
      {
        deviceName: '/dev/vda',
        bootIndex: 0,
        sourceType: 'image',
        destinationType: 'local',
        imageName: image.name,
        sizeGb: rootDiskGb(flavor, image),
      },
    ],
  };
}
