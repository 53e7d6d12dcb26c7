/** `npm run temporal -- <args>`: the project's pinned `temporal` CLI, found like every other binary. */
import { spawnSync } from 'node:child_process';

import { requireTemporalBinary, TemporalBinaryNotFound } from './temporal-binaries';

try {
  const cli = requireTemporalBinary('cli');
  const result = spawnSync(cli, process.argv.slice(2), { stdio: 'inherit' });
  process.exit(result.status ?? 1);
} catch (err) {
  if (err instanceof TemporalBinaryNotFound) {
    console.error(err.message);
    process.exit(1);
  }
  throw err;
}
