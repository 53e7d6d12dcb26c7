/**
 * A private RabbitMQ broker (scripts/rabbitmq.sh) and the unmodified oslo.messaging notification listener
 * (test/notifications/oslo_listener.py in the venv of scripts/install-oslo-listener.sh), for tests that
 * publish notifications the way Nova's consumers receive them.
 */
import { execFile, spawn, type ChildProcess } from 'node:child_process';
import { existsSync } from 'node:fs';
import path from 'node:path';
import { createInterface } from 'node:readline';
import { promisify } from 'node:util';

import { freePort } from './ports';

const run = promisify(execFile);
const ROOT = path.resolve(__dirname, '../..');
const SCRIPT = path.join(ROOT, 'scripts/rabbitmq.sh');
export const OSLO_PYTHON = path.join(ROOT, '.tools/oslo/bin/python');
const LISTENER = path.join(ROOT, 'test/notifications/oslo_listener.py');

/** What is missing to run these tests, as the one line to print (undefined: nothing). */
export function rabbitmqTestsMissing(): string | undefined {
  const missing = [];
  if (!existsSync('/usr/lib/rabbitmq/bin/rabbitmq-server'))
    missing.push('rabbitmq-server (scripts/install-rabbitmq.sh)');
  if (!existsSync(OSLO_PYTHON)) missing.push('oslo.messaging in .tools/oslo (scripts/install-oslo-listener.sh)');
  return missing.length ? `missing: ${missing.join(', ')}; \`make test-deps\` installs them` : undefined;
}

export interface Broker {
  readonly dir: string;
  readonly port: number;
  /** amqp://guest:guest@127.0.0.1:<port>/ (our NOTIFICATION_URL). */
  readonly url: string;
  /** The same broker as oslo's transport_url: rabbit://guest:guest@127.0.0.1:<port>/. */
  readonly osloUrl: string;
  /** Seconds the last start took (from the script's own measure). */
  lastStartSeconds: number;
  start(): Promise<void>;
  stop(): Promise<void>;
  /** rabbitmqctl against this broker; its stdout. */
  ctl(...args: string[]): Promise<string>;
}

/** A broker on free loopback ports with its data under `dir`, started. */
export async function startBroker(dir: string): Promise<Broker> {
  const [port, epmd, dist] = [await freePort(), await freePort(), await freePort()];
  const env = { ...process.env, ERL_EPMD_PORT: String(epmd), RABBITMQ_DIST_PORT: String(dist) };
  const broker: Broker = {
    dir,
    port,
    url: `amqp://guest:guest@127.0.0.1:${port}/`,
    osloUrl: `rabbit://guest:guest@127.0.0.1:${port}/`,
    lastStartSeconds: NaN,
    async start() {
      const { stdout } = await run('bash', [SCRIPT, 'start', dir, String(port)], { env, timeout: 150_000 });
      const seconds = /started in ([\d.]+) s/.exec(stdout)?.[1];
      broker.lastStartSeconds = Number(seconds);
    },
    async stop() {
      await run('bash', [SCRIPT, 'stop', dir], { timeout: 60_000 });
    },
    async ctl(...args: string[]) {
      const { stdout } = await run('bash', [SCRIPT, 'ctl', dir, ...args], { timeout: 60_000 });
      return stdout;
    },
  };
  await broker.start();
  return broker;
}

/** One notification as the listener printed it: what oslo handed the endpoint. */
export interface Received {
  priority: string;
  event_type: string;
  publisher_id: string;
  payload: Record<string, unknown>;
  metadata: { message_id: string; timestamp: string };
  ctxt: Record<string, unknown>;
}

export interface OsloListener {
  readonly received: Received[];
  /** Its stderr so far (oslo's log), for failure messages. */
  log(): string;
  stop(): Promise<void>;
}

/** Starts the oslo.messaging listener on `osloUrl`; resolves once it has started its listener. */
export async function startOsloListener(osloUrl: string, { durable = false } = {}): Promise<OsloListener> {
  const child: ChildProcess = spawn(OSLO_PYTHON, ['-W', 'ignore', LISTENER, osloUrl], {
    stdio: ['ignore', 'pipe', 'pipe'],
    env: { ...process.env, ...(durable ? { OSLO_AMQP_DURABLE_QUEUES: '1' } : {}) },
  });
  const received: Received[] = [];
  let stderr = '';
  createInterface({ input: child.stdout! }).on('line', (line) => received.push(JSON.parse(line) as Received));
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  await new Promise<void>((resolve, reject) => {
    child.stderr!.on('data', (chunk: Buffer) => {
      stderr += chunk.toString();
      if (/^listening$/m.test(stderr)) resolve();
    });
    child.once('exit', (code) =>
      reject(new Error(`the oslo listener exited (${code}) before it listened:\n${stderr}`))
    );
  });
  return {
    received,
    log: () => stderr,
    async stop() {
      if (child.exitCode !== null || child.signalCode !== null) return;
      child.kill('SIGTERM');
      const timer = setTimeout(() => child.kill('SIGKILL'), 15_000);
      await exited;
      clearTimeout(timer);
    },
  };
}
