/**
 * The environment a compute worker process gets: compute holds no store credentials in any mode. The
 * launcher passes it only what compute reads (an allowlist, so a credential added to the operator's
 * shell later does not leak either): the process basics, TEMPORAL_* (the connection to Temporal,
 * TLS files or API key included: those are Temporal's, not the store's), COMPUTE_*, the QEMU driver's
 * GUEST_IMAGE_DIR and QEMU_*, logging, metrics,
 * the fleet and data folders, and CONDUCTOR_CODEC_KEY_FILE (compute decrypts its activity inputs: a
 * payload key, not a store credential). Never DATABASE_URL, PG*, POSTGRES_* or the codec server's
 * Authorization secret.
 */

const PASSED = new Set([
  'PATH',
  'HOME',
  'USER',
  'LOGNAME',
  'SHELL',
  'LANG',
  'TZ',
  'TMPDIR',
  'TERM',
  'NODE_ENV',
  'NODE_OPTIONS',
  'NODE_EXTRA_CA_CERTS',
  'DATA_DIR',
  'FLEET_FILE',
  'CATALOGUE_FILE',
  'HOST_DOWN_AFTER_SECONDS',
  'LOG_LEVEL',
  'LOG_FORMAT',
  'METRICS_HOST',
  'METRICS_PORT',
  'CONDUCTOR_CODEC_KEY_FILE',
  'GUEST_IMAGE_DIR',
]);
const PASSED_PREFIXES = ['LC_', 'TEMPORAL_', 'COMPUTE_', 'QEMU_'];

/** The names of the variables in `env` that are (or carry) a store credential. */
export function storeCredentialNames(env: Readonly<Record<string, string | undefined>>): string[] {
  return Object.entries(env)
    .filter(
      ([name, value]) =>
        name === 'DATABASE_URL' ||
        /^PG/.test(name) ||
        /^POSTGRES/.test(name) ||
        (value !== undefined && /\b(postgres|postgresql):\/\//i.test(value))
    )
    .map(([name]) => name);
}

/** `parent` reduced to what a compute worker reads, then `extra` (its COMPUTE_HOST, ports …) over it. */
export function computeEnvironment(
  parent: Readonly<Record<string, string | undefined>>,
  extra: Readonly<Record<string, string | undefined>> = {}
): Record<string, string> {
  const out: Record<string, string> = {};
  for (const [name, value] of Object.entries({ ...parent, ...extra })) {
    if (value === undefined) continue;
    if (PASSED.has(name) || PASSED_PREFIXES.some((p) => name.startsWith(p))) out[name] = value;
  }
  for (const name of storeCredentialNames(out)) delete out[name];
  return out;
}

/** The codec server's environment: what compute gets (no store credential), plus its own CONDUCTOR_CODEC_* settings. */
export function codecServerEnvironment(parent: Readonly<Record<string, string | undefined>>): Record<string, string> {
  const own = Object.entries(parent).filter(
    (e): e is [string, string] => e[0].startsWith('CONDUCTOR_CODEC_') && e[1] !== undefined
  );
  return { ...computeEnvironment(parent), ...Object.fromEntries(own) };
}
