/**
 * Processes the fault suite (and bench:scale) starts, kills, freezes and restarts. Free of vitest: the
 * benchmark imports it too; the suite's bounded waits are in ./harness (vi.waitFor).
 */
import { type ChildProcess, spawn } from 'node:child_process';
import path from 'node:path';

import { Connection } from '@temporalio/client';
import { backOff } from 'exponential-backoff';

const ROOT = path.resolve(__dirname, '..', '..');

/**
 * A connection to the dev server `server` runs at `address`, once it serves the default namespace: asked
 * every 250 ms while the process runs, for at most `timeoutMs`.
 */
export async function connectWhenServing(server: Proc, address: string, timeoutMs = 60_000): Promise<Connection> {
  const deadline = Date.now() + timeoutMs;
  try {
    return await backOff(
      async () => {
        if (!server.alive) throw new Error(`dev server exited:\n${server.output}`);
        const c = await Connection.connect({ address, connectTimeout: 1_000 });
        try {
          await c.workflowService.describeNamespace({ namespace: 'default' });
          return c;
        } catch (err) {
          await c.close();
          throw err;
        }
      },
      {
        numOfAttempts: Number.MAX_SAFE_INTEGER,
        startingDelay: 250,
        timeMultiple: 1,
        retry: () => server.alive && Date.now() < deadline,
      }
    );
  } catch (err) {
    throw new Error(
      `the dev server at ${address} did not accept connections within ${timeoutMs} ms: ${err instanceof Error ? err.message : String(err)}`,
      { cause: err }
    );
  }
}

/** One supervised process: started, killed, frozen and restarted by the test. Output kept for diagnosis. */
export class Proc {
  child?: ChildProcess;
  output = '';
  constructor(
    readonly name: string,
    private readonly command: string,
    private readonly args: string[],
    private readonly env: NodeJS.ProcessEnv
  ) {}

  get alive(): boolean {
    return this.child !== undefined && this.child.exitCode === null && this.child.signalCode === null;
  }

  start(): this {
    if (this.alive) throw new Error(`${this.name} is already running`);
    this.output += `--- start ${new Date().toISOString()}\n`;
    const child = spawn(this.command, this.args, { cwd: ROOT, env: this.env, stdio: ['ignore', 'pipe', 'pipe'] });
    child.stdout?.on('data', (c: Buffer) => (this.output += c.toString()));
    child.stderr?.on('data', (c: Buffer) => (this.output += c.toString()));
    this.child = child;
    return this;
  }

  /** Sends the signal and, for a killing one, waits until the process is gone. */
  async signal(sig: NodeJS.Signals): Promise<void> {
    const child = this.child;
    if (!child || !this.alive) return;
    if (sig === 'SIGSTOP' || sig === 'SIGCONT') {
      child.kill(sig);
      return;
    }
    const gone = new Promise<void>((resolve) => child.once('exit', () => resolve()));
    child.kill('SIGCONT');
    child.kill(sig);
    const timer = setTimeout(() => child.kill('SIGKILL'), 20_000);
    await gone;
    clearTimeout(timer);
  }

  /**
   * Waits until the output since the last start contains `text`: resolved by the output itself, rejected
   * when the process exits first or after `timeoutMs`.
   */
  waitFor(text: string, timeoutMs = 90_000): Promise<void> {
    const from = this.output.lastIndexOf('--- start');
    const child = this.child;
    const printed = () => this.output.indexOf(text, from) >= 0;
    if (printed()) return Promise.resolve();
    if (!child || !this.alive) return Promise.reject(new Error(`${this.name} exited:\n${this.output.slice(-3000)}`));
    return new Promise<void>((resolve, reject) => {
      const done = (err?: Error) => {
        clearTimeout(timer);
        child.stdout?.off('data', check);
        child.stderr?.off('data', check);
        child.off('exit', exited);
        if (err) reject(err);
        else resolve();
      };
      // Listeners added after start()'s own, so this.output already holds the chunk.
      const check = () => printed() && done();
      const exited = () => (printed() ? done() : done(new Error(`${this.name} exited:\n${this.output.slice(-3000)}`)));
      const timer = setTimeout(
        () => done(new Error(`timed out after ${timeoutMs} ms: ${this.name} to print ${text}`)),
        timeoutMs
      );
      child.stdout?.on('data', check);
      child.stderr?.on('data', check);
      child.once('exit', exited);
    });
  }
}
