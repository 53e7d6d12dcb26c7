/** Identifiers the API shows: the UUIDv5 ids of src/store/ids.ts, and Nova's hostId. */
import { createHash } from 'node:crypto';

export { hypervisorId, imageId, keystoneId, serverGroupId, serviceId, uuid5 } from '../store/ids';

/** Nova's hostId: sha224 of the project id and the host, empty without a host (nova/utils.py generate_hostid). */
export function hostIdOf(host: string | null, projectId: string): string {
  if (!host) return '';
  return createHash('sha224')
    .update(projectId + host)
    .digest('hex');
}
