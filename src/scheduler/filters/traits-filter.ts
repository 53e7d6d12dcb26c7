import type { SchedulingRequest } from '../types';
import type { HostFilter } from './host-filter';

const TRAIT_PREFIX = 'trait:';

/** Traits a host must have and must not have for this request. */
export interface TraitRequirements {
  required: string[];
  forbidden: string[];
}

/**
 * Flavor extra specs `trait:NAME` = `required` | `forbidden`, plus the image's `traitsRequired`.
 * Extra specs that are not traits, or carry another value, ask nothing (the catalogue schema rejects
 * such values before they get here).
 */
export function traitRequirements(req: SchedulingRequest): TraitRequirements {
  const required = [...req.image.properties.traitsRequired];
  const forbidden: string[] = [];
  for (const key in req.flavor.extraSpecs) {
    if (!key.startsWith(TRAIT_PREFIX)) continue;
    const trait = key.slice(TRAIT_PREFIX.length);
    const value = req.flavor.extraSpecs[key];
    if (value === 'required' && !required.includes(trait)) required.push(trait);
    else if (value === 'forbidden' && !forbidden.includes(trait)) forbidden.push(trait);
  }
  return { required, forbidden };
}

/**
 * Hosts with every required trait and none of the forbidden ones.
 *
 * NOTE(nova): placement's `required=` / `required=!` query parameters. A trait both required and
 * forbidden matches no host, as in placement.
 */
export const TraitsFilter: HostFilter = {
  name: 'TraitsFilter',
  runOnRebuild: false,
  isActive(req) {
    const { required, forbidden } = traitRequirements(req);
    return required.length > 0 || forbidden.length > 0;
  },
  hostPasses(host, req) {
    const { required, forbidden } = traitRequirements(req);
    return required.every((t) => host.traits.has(t)) && !forbidden.some((t) => host.traits.has(t));
  },
};
