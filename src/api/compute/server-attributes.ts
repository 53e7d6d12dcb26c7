/**
 * What a client sets on a server and Nova echoes back: accessIPv4, accessIPv6 (create, update, rebuild)
 * and OS-DCF:diskConfig. Checked as Nova's schema does (formats ipv4 / ipv6); IPv6 kept in its canonical
 * form (RFC 5952), as Nova's IPAddress column gives it back.
 */
import { isIPv4, isIPv6 } from 'node:net';

import type { InstanceAttributes } from '../../store/api';
import { badRequest } from '../errors';

/** RFC 5952 form of an IPv6 address (the WHATWG URL parser's host serialisation is that form). */
export function canonicalIPv6(address: string): string {
  return new URL(`http://[${address}]/`).hostname.replace(/^\[|\]$/g, '');
}

/** The attributes a create, update or rebuild body sets (undefined: not given); 400 for a bad value. */
export function attributesOf(body: Record<string, unknown>): Partial<InstanceAttributes> {
  const out: Partial<InstanceAttributes> = {};
  const invalid = (field: string, v: unknown, format: string) =>
    badRequest(
      `Invalid input for field/attribute ${field}. Value: ${JSON.stringify(v)}. ${JSON.stringify(v)} is not a '${format}'`
    );
  const v4 = body.accessIPv4;
  if (v4 !== undefined && v4 !== null && v4 !== '') {
    if (typeof v4 !== 'string' || !isIPv4(v4)) throw invalid('accessIPv4', v4, 'ipv4');
    out.accessIPv4 = v4;
  } else if (v4 !== undefined) out.accessIPv4 = null;
  const v6 = body.accessIPv6;
  if (v6 !== undefined && v6 !== null && v6 !== '') {
    if (typeof v6 !== 'string' || !isIPv6(v6)) throw invalid('accessIPv6', v6, 'ipv6');
    out.accessIPv6 = canonicalIPv6(v6);
  } else if (v6 !== undefined) out.accessIPv6 = null;
  const disk = body['OS-DCF:diskConfig'];
  if (disk !== undefined) {
    if (disk !== 'AUTO' && disk !== 'MANUAL')
      throw badRequest(
        `Invalid input for field/attribute OS-DCF:diskConfig. Value: ${JSON.stringify(disk)}. ${JSON.stringify(disk)} is not one of ['AUTO', 'MANUAL']`
      );
    out.diskConfig = disk;
  }
  return out;
}
