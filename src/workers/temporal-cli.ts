/**
 * `npm run temporal -- <args>`: the project's pinned `temporal` CLI, found like every other binary. With
 * a payload codec key configured (CONDUCTOR_CODEC_KEY_FILE), it decodes through the codec server that
 * `npm start` runs (TEMPORAL_CODEC_ENDPOINT, unless already set), so it shows plain payloads.
 */
import { spawnSync } from 'node:child_process';

import { codecEndpointFor, loadEnv } from './config';
import { requireTemporalBinary, TemporalBinaryNotFound } from './temporal-binaries';

try {
  const cli = requireTemporalBinary('cli');
  const endpoint = codecEndpointFor(loadEnv());
  const result = spawnSync(cli, process.argv.slice(2), {
    stdio: 'inherit',
    // The CLI's own TEMPORAL_CODEC_ENDPOINT, when set, wins.
    env: endpoint ? { TEMPORAL_CODEC_ENDPOINT: endpoint, ...process.env } : process.env,
  });
  process.exit(result.status ?? 1);
} catch (err) {
  if (err instanceof TemporalBinaryNotFound) {
    console.error(err.message);
    process.exit(1);
  }
  throw err;
}
