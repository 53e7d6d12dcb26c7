/**
 * A Stack whose processes the launcher starts and supervises (`npm start`, src/workers/launcher.ts)
 * instead of the test: the scenario kills the launcher's children by the pids it logs, and watches the
 * launcher restart them, back off, or leave them down.
 */
import path from 'node:path';

import { Client, Connection } from '@temporalio/client';
import { inject } from 'vitest';

import { freePort } from '../helpers/ports';
import { Stack } from './harness';
import { Proc } from './process';

const ROOT = path.resolve(__dirname, '..', '..');

export class LauncherStack extends Stack {
  launcher?: Proc;

  /** Starts the launcher on free ports and waits until it says the system is running. */
  async startLauncher(env: Record<string, string> = {}): Promise<void> {
    this.port = await freePort();
    const launcher = new Proc(
      'launcher',
      process.execPath,
      ['--import', 'tsx', path.join(ROOT, 'src', 'workers', 'launcher.ts')],
      {
        ...process.env,
        DATA_DIR: this.dataDir,
        FLEET_FILE: this.fleetFile,
        TEMPORAL_PORT: String(this.port),
        TEMPORAL_UI_PORT: String(await freePort()),
        API_PORT: String(await freePort()),
        TEMPORAL_CLI_PATH: inject('temporalCli'),
        COMPUTE_SPAWN_SECONDS: String(this.spawnSeconds),
        WORKFLOW_BUNDLE_PATH: inject('workflowBundlePath'),
        LOG_LEVEL: 'INFO',
        // The reconciler's Schedule off unless the scenario asks for it, as on Stack: its run firing
        // during the launcher's shutdown made the server log an Unavailable the scenario counts.
        RECONCILE_PERIOD_SECONDS: '0',
        ...env,
      }
    );
    this.launcher = launcher.start();
    await launcher.waitFor('Conductor on Temporal is running', 180_000);
    this.connection = await Connection.connect({ address: this.address });
    this.client = new Client({ connection: this.connection });
  }

  /** The pid the launcher last started `name` with (from its `launcher: started <name> (pid N)` lines). */
  pidOf(name: string): number | undefined {
    const pids = [...(this.launcher?.output ?? '').matchAll(/^launcher: started (\S+) \(pid (\d+)\)$/gm)]
      .filter((m) => m[1] === name)
      .map((m) => Number(m[2]));
    return pids.at(-1);
  }

  /** Every pid the launcher ever started. */
  allPids(): number[] {
    return [...(this.launcher?.output ?? '').matchAll(/^launcher: started \S+ \(pid (\d+)\)$/gm)].map((m) =>
      Number(m[1])
    );
  }

  override logs(lines = 80): string {
    return `===== launcher\n${(this.launcher?.output ?? '').split('\n').slice(-lines).join('\n')}`;
  }

  /** The launcher stopped (SIGTERM, then SIGKILL), and any child it left behind killed. */
  override async dispose(): Promise<void> {
    await this.launcher?.signal('SIGTERM').catch(() => undefined);
    for (const pid of this.allPids()) if (isAlive(pid)) process.kill(pid, 'SIGKILL');
    await super.dispose();
  }
}

export function isAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}
