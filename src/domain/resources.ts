/** Placement resource classes and the shape of one inventory record. */

export const ResourceClass = {
  VCPU: 'VCPU',
  MEMORY_MB: 'MEMORY_MB',
  DISK_GB: 'DISK_GB',
} as const;
export type ResourceClass = (typeof ResourceClass)[keyof typeof ResourceClass];
export const RESOURCE_CLASSES: readonly ResourceClass[] = [
  ResourceClass.VCPU,
  ResourceClass.MEMORY_MB,
  ResourceClass.DISK_GB,
];

export interface Inventory {
  total: number;
  reserved: number;
  allocationRatio: number;
}

/** Amounts of each resource class, for a claim or an allocation. */
export type Resources = Record<ResourceClass, number>;

/** What a host can still hand out of one class: (total - reserved) * ratio - used. */
export function capacity(inv: Inventory): number {
  return Math.floor((inv.total - inv.reserved) * inv.allocationRatio);
}

/** Traits are upper-case identifiers, standard (HW_CPU_X86_AVX2) or custom (CUSTOM_FOO). */
export const TRAIT_PATTERN = /^[A-Z][A-Z0-9_]{0,254}$/;
