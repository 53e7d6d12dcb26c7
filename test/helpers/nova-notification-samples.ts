/**
 * Nova's versioned notification samples (doc/notification_samples in the nova sdist), read at test time
 * from .tools/nova/notification_samples (scripts/install-openstack-tools.sh): never copied into the
 * repository. A sample's `$ref`s are resolved as Nova's own sample tests do (the referenced payload, then
 * the sample's `nova_object.data` on top).
 */
import { existsSync, readFileSync } from 'node:fs';
import path from 'node:path';

import { ROOT } from './cli';

const SAMPLES = path.join(ROOT, '.tools', 'nova', 'notification_samples');

type Json = null | boolean | number | string | Json[] | { [key: string]: Json };

function load(file: string): Json {
  const full = path.join(SAMPLES, file);
  if (!existsSync(full))
    throw new Error(
      `Nova notification sample ${file} missing: run bash scripts/install-openstack-tools.sh (make test-deps)`
    );
  return JSON.parse(readFileSync(full, 'utf8')) as Json;
}

const isObject = (v: Json | undefined): v is { [key: string]: Json } =>
  v !== null && v !== undefined && typeof v === 'object' && !Array.isArray(v);

/** A sample's own values over the referenced payload's, objects merged key by key (Nova's sample tests). */
function overlay(base: Json | undefined, top: Json): Json {
  if (!isObject(base) || !isObject(top)) return top;
  const out = { ...base };
  for (const [k, v] of Object.entries(top)) out[k] = overlay(out[k], v);
  return out;
}

/** Resolves `$ref` (relative to `dir`) recursively, overlaying the referring object's own keys. */
function resolve(value: Json, dir: string): Json {
  if (Array.isArray(value)) return value.map((v) => resolve(v, dir));
  if (value === null || typeof value !== 'object') return value;
  const ref = value.$ref;
  let base: { [key: string]: Json } = {};
  if (typeof ref === 'string') {
    const file = path.join(dir, ref.replace(/#$/, ''));
    base = resolve(load(file), path.dirname(file)) as { [key: string]: Json };
  }
  const out: { [key: string]: Json } = { ...base };
  for (const [key, v] of Object.entries(value)) {
    if (key === '$ref') continue;
    out[key] = overlay(out[key], resolve(v, dir));
  }
  return out;
}

/** The sample of an event type (`instance.create.start` → instance-create-start.json), resolved. */
export function notificationSample(
  eventType: string,
  variant = ''
): {
  event_type: string;
  priority: string;
  publisher_id: string;
  payload: Record<string, unknown>;
} {
  const [head, ...rest] = eventType.split('.');
  const file = `${head}-${rest.join('-')}${variant}.json`;
  return resolve(load(file), '') as never;
}

/**
 * The shape of a payload, to compare with a sample's: every Nova object as its name, version and the
 * shapes of its fields (nested objects too); other values as their JSON kind, null counting as any kind
 * (Nova's samples show one value where the field may be null); lists as their first element's shape.
 */
export function payloadShape(value: unknown): unknown {
  if (Array.isArray(value)) return value.length > 0 ? [payloadShape(value[0])] : [];
  if (value === null) return 'any';
  if (typeof value === 'object') {
    const o = value as Record<string, unknown>;
    if ('nova_object.name' in o)
      return {
        name: o['nova_object.name'],
        namespace: o['nova_object.namespace'],
        version: o['nova_object.version'],
        data: Object.fromEntries(
          Object.keys(o['nova_object.data'] as object)
            .sort()
            .map((k) => [k, payloadShape((o['nova_object.data'] as Record<string, unknown>)[k])])
        ),
      };
    return 'object';
  }
  return typeof value;
}

/**
 * Differences between our payload's shape and the sample's: missing or extra fields, other object
 * names or versions, other kinds (null matches any kind; an empty list matches any list).
 */
export function shapeDifferences(ours: unknown, sample: unknown, at = 'payload'): string[] {
  if (ours === 'any' || sample === 'any') return [];
  if (Array.isArray(ours) && Array.isArray(sample)) {
    if (ours.length === 0 || sample.length === 0) return [];
    return shapeDifferences(ours[0], sample[0], `${at}[0]`);
  }
  if (
    ours &&
    sample &&
    typeof ours === 'object' &&
    typeof sample === 'object' &&
    !Array.isArray(ours) &&
    !Array.isArray(sample)
  ) {
    const a = ours as { name: string; version: string; namespace: string; data: Record<string, unknown> };
    const b = sample as typeof a;
    const out: string[] = [];
    for (const k of ['name', 'namespace', 'version'] as const)
      if (a[k] !== b[k]) out.push(`${at}: nova_object.${k} ${String(a[k])}, sample ${String(b[k])}`);
    // Nova's image properties carry only the properties the image sets.
    const open = a.name === 'ImageMetaPropsPayload';
    for (const k of Object.keys(b.data)) if (!(k in a.data) && !open) out.push(`${at}.${k}: missing`);
    for (const k of Object.keys(a.data)) if (!(k in b.data)) out.push(`${at}.${k}: not in the sample`);
    for (const k of Object.keys(a.data))
      if (k in b.data) out.push(...shapeDifferences(a.data[k], b.data[k], `${at}.${k}`));
    return out;
  }
  return JSON.stringify(ours) === JSON.stringify(sample)
    ? []
    : [`${at}: ${JSON.stringify(ours)}, sample ${JSON.stringify(sample)}`];
}
