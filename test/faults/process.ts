/** Process supervision for the fault suite: bounded polling, and processes started, killed, frozen and restarted. */
import { type ChildProcess, spawn } from 'node:child_process';
import path from 'node:path';

const ROOT = path.resolve(__dirname, '..', '..');

export const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** Polls `probe` until it returns a value other than undefined; throws with `what` after `timeoutMs`. */
export async function until<T>(what: string, timeoutMs: number, probe: () => Promise<T | undefined>): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  let last: Error | undefined;
  for (;;) {
    try {
      const value = await probe();
      if (value !== undefined) return value;
    } catch (err) {
      last = err instanceof Error ? err : new Error(String(err));
    }
    if (Date.now() > deadline)
      throw new Error(`timed out after ${timeoutMs} ms: ${what}${last ? ` (${last.message})` : ''}`);
    await sleep(250);
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

  /** Waits until the output since the last start contains `text`. */
  async waitFor(text: string, timeoutMs = 90_000): Promise<void> {
    const from = this.output.lastIndexOf('--- start');
    await until(`${this.name} to print ${text}`, timeoutMs, () => {
      if (!this.alive) throw new Error(`${this.name} exited:\n${this.output.slice(-3000)}`);
      return Promise.resolve(this.output.indexOf(text, from) >= 0 ? true : undefined);
    });
  }
}
