import { z } from 'zod';

import { InvalidRequest } from './errors';
import { TRAIT_PATTERN } from './resources';

/** A flavor: the size of an instance. Extra specs carry `trait:NAME` = required | forbidden. */
export const FlavorSchema = z.object({
  name: z.string().min(1).max(255),
  vcpus: z.number().int().positive().max(1024),
  memoryMb: z
    .number()
    .int()
    .positive()
    .max(16 * 1024 * 1024),
  diskGb: z
    .number()
    .int()
    .nonnegative()
    .max(1024 * 1024),
  extraSpecs: z
    .record(z.string().max(255), z.string().max(255))
    .default({})
    .superRefine((specs, ctx) => {
      for (const [key, value] of Object.entries(specs)) {
        if (!key.startsWith('trait:')) continue;
        const trait = key.slice('trait:'.length);
        if (!TRAIT_PATTERN.test(trait))
          ctx.addIssue({ code: 'custom', path: [key], message: `malformed trait '${trait}'` });
        if (value !== 'required' && value !== 'forbidden')
          ctx.addIssue({ code: 'custom', path: [key], message: `trait value must be 'required' or 'forbidden'` });
      }
    }),
});
export type Flavor = z.infer<typeof FlavorSchema>;

/** An image: what the guest boots from, and what it needs of a host. */
export const ImageSchema = z.object({
  name: z.string().min(1).max(255),
  /** Size of the image itself; a root disk smaller than this aborts the build on the compute host. */
  sizeGb: z
    .number()
    .nonnegative()
    .max(1024 * 1024)
    .default(0),
  minDiskGb: z.number().int().nonnegative().default(0),
  minRamMb: z.number().int().nonnegative().default(0),
  properties: z
    .object({
      /** Guest architecture (Nova's hw_architecture); hosts of another architecture are filtered out. */
      hwArchitecture: z.string().max(32).optional(),
      /** Seconds a graceful shutdown may take before a forced power-off (Nova's os_shutdown_timeout). */
      osShutdownTimeout: z.number().int().nonnegative().optional(),
      traitsRequired: z.array(z.string().regex(TRAIT_PATTERN)).default([]),
    })
    .default({ traitsRequired: [] }),
});
export type Image = z.infer<typeof ImageSchema>;

export const CatalogueSchema = z.object({
  flavors: z.array(FlavorSchema),
  images: z.array(ImageSchema),
});
export type Catalogue = z.infer<typeof CatalogueSchema>;

/** Nova's classic flavors and a few images; users extend them through a catalogue file. */
export const DEFAULT_CATALOGUE: Catalogue = CatalogueSchema.parse({
  flavors: [
    { name: 'm1.tiny', vcpus: 1, memoryMb: 512, diskGb: 1 },
    { name: 'm1.small', vcpus: 1, memoryMb: 2048, diskGb: 20 },
    { name: 'm1.medium', vcpus: 2, memoryMb: 4096, diskGb: 40 },
    { name: 'm1.large', vcpus: 4, memoryMb: 8192, diskGb: 80 },
    { name: 'm1.xlarge', vcpus: 8, memoryMb: 16384, diskGb: 160 },
  ],
  images: [
    { name: 'cirros', sizeGb: 0.02, minDiskGb: 0, minRamMb: 64, properties: { hwArchitecture: 'x86_64' } },
    // The real-guest test images (scripts/build-guest-images.sh): `stubborn` ignores the ACPI power button,
    // so a stop ends in the forced power-off after its (short) shutdown timeout; `dirty` rewrites its memory
    // fast, so a live migration does not converge unless forced.
    {
      name: 'stubborn',
      sizeGb: 0.02,
      minDiskGb: 0,
      minRamMb: 64,
      properties: { hwArchitecture: 'x86_64', osShutdownTimeout: 5 },
    },
    { name: 'dirty', sizeGb: 0.02, minDiskGb: 0, minRamMb: 64, properties: { hwArchitecture: 'x86_64' } },
    { name: 'ubuntu-24.04', sizeGb: 3, minDiskGb: 3, minRamMb: 1024, properties: { hwArchitecture: 'x86_64' } },
    { name: 'fedora-41-aarch64', sizeGb: 5, minDiskGb: 5, minRamMb: 1024, properties: { hwArchitecture: 'aarch64' } },
  ],
});

/** Merge a user catalogue over the defaults: entries of the same name replace the default one. */
export function mergeCatalogues(base: Catalogue, extra: Catalogue): Catalogue {
  const byName = <T extends { name: string }>(a: T[], b: T[]): T[] => [
    ...new Map([...a, ...b].map((item) => [item.name, item])).values(),
  ];
  return { flavors: byName(base.flavors, extra.flavors), images: byName(base.images, extra.images) };
}

/** The flavor of that name; an unknown one is an InvalidRequest naming `field`. */
export function resolveFlavor(catalogue: Catalogue, name: string, field = 'flavor'): Flavor {
  const flavor = catalogue.flavors.find((f) => f.name === name);
  if (!flavor) throw new InvalidRequest(field, `unknown flavor '${name}'`);
  return flavor;
}

/** The image of that name; an unknown one is an InvalidRequest naming `field`. */
export function resolveImage(catalogue: Catalogue, name: string, field = 'image'): Image {
  const image = catalogue.images.find((i) => i.name === name);
  if (!image) throw new InvalidRequest(field, `unknown image '${name}'`);
  return image;
}

/**
 * NOTE(nova): the API refuses a flavor below the image's min_ram / min_disk (FlavorMemoryTooSmall,
 * FlavorDiskTooSmall) before anything is written; the real image size is only known on the host. The
 * InvalidRequest names the field the caller chose: `flavor` (a build or a resize picks the flavor) or
 * `image` (a rebuild picks the image for the instance's own flavor).
 */
export function checkImageFitsFlavor(flavor: Flavor, image: Image, field: 'flavor' | 'image'): void {
  const memory = image.minRamMb > flavor.memoryMb;
  const disk = flavor.diskGb > 0 && image.minDiskGb > flavor.diskGb;
  if (field === 'flavor') {
    if (memory)
      throw new InvalidRequest(
        'flavor',
        `flavor's memory ${flavor.memoryMb} MB is smaller than image ${image.name}'s minimum ${image.minRamMb} MB`
      );
    if (disk)
      throw new InvalidRequest(
        'flavor',
        `flavor's disk ${flavor.diskGb} GB is smaller than image ${image.name}'s minimum ${image.minDiskGb} GB`
      );
  } else {
    if (memory)
      throw new InvalidRequest(
        'image',
        `image ${image.name} needs ${image.minRamMb} MB of memory; the instance's flavor has ${flavor.memoryMb} MB`
      );
    if (disk)
      throw new InvalidRequest(
        'image',
        `image ${image.name} needs a ${image.minDiskGb} GB disk; the instance's flavor has ${flavor.diskGb} GB`
      );
  }
}
