/**
 * Nova's api-sample templates (nova/tests/functional/api_sample_tests/api_samples/**.json.tpl), read at
 * test time from the pinned nova wheel that scripts/install-openstack-tools.sh unpacks into .tools/nova:
 * never copied into the repository. `keyShape` turns a body into its key structure so a response can be
 * compared with the sample for the same microversion.
 */
import { existsSync, readFileSync } from 'node:fs';
import path from 'node:path';

import { ROOT } from './cli';

const SAMPLES = path.join(ROOT, '.tools', 'nova', 'api_samples');

/** The sample `<api>/[v2.XX/]<name>.json.tpl` as JSON (placeholders become strings or 0). */
export function novaSample(file: string): unknown {
  const full = path.join(SAMPLES, `${file}.json.tpl`);
  if (!existsSync(full))
    throw new Error(`Nova api-sample ${file} missing: run bash scripts/install-openstack-tools.sh (make test-deps)`);
  const text = readFileSync(full, 'utf8')
    .replace(/"%\([^)]+\)s"/g, '"x"')
    .replace(/%\([^)]+\)s/g, '0');
  return JSON.parse(text) as unknown;
}

/** The shape of a JSON value: objects become their sorted keys' shapes, arrays their first element's. */
export function keyShape(value: unknown): unknown {
  if (Array.isArray(value)) return value.length > 0 ? [keyShape(value[0])] : [];
  if (value !== null && typeof value === 'object')
    return Object.fromEntries(
      Object.keys(value)
        .sort()
        .map((k) => [k, keyShape((value as Record<string, unknown>)[k])])
    );
  return typeof value === 'number' ? 'number' : value === null ? 'scalar' : 'scalar';
}

/** Only the key structure (leaf types ignored: Nova's samples put strings where values may be null). */
export function keysOnly(value: unknown): unknown {
  if (Array.isArray(value)) return value.length > 0 ? [keysOnly(value[0])] : [];
  if (value !== null && typeof value === 'object')
    return Object.fromEntries(
      Object.keys(value)
        .sort()
        .map((k) => [k, keysOnly((value as Record<string, unknown>)[k])])
    );
  return '.';
}

/** The top-level keys of a sample's one member (`server`, `flavor` …), sorted. */
export function sampleKeys(file: string, member: string): string[] {
  const body = novaSample(file) as Record<string, Record<string, unknown>>;
  return Object.keys(body[member] ?? {}).sort();
}
