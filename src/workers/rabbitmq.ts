/**
 * A private RabbitMQ broker as a supervised process (scripts/rabbitmq.sh run: 127.0.0.1 only, its data,
 * logs, node name and epmd under its directory), for `make cluster` and `NOTIFICATION_RABBITMQ=1 npm
 * start`: the notification relay publishes to it (docs/notifications.md).
 */
import { existsSync } from 'node:fs';
import { connect } from 'node:net';
import path from 'node:path';

import type { Managed } from './supervisor';
import { managedProcess } from './supervisor';
import { PROJECT_ROOT } from './temporal-binaries';

const SERVER = '/usr/lib/rabbitmq/bin/rabbitmq-server';

/** The broker of `dir` on `port`; throws, saying how to install it, when Debian's rabbitmq-server is missing. */
export function rabbitmqProcess(dir: string, port: number): Managed {
  if (!existsSync(SERVER)) throw new Error(`${SERVER} not found: run \`bash scripts/install-rabbitmq.sh\``);
  return managedProcess('rabbitmq', 'server', 'bash', [
    path.join(PROJECT_ROOT, 'scripts', 'rabbitmq.sh'),
    'run',
    dir,
    String(port),
  ]);
}

/** The relay's URL of that broker (its default user, which may connect from loopback only). */
export const rabbitmqUrl = (port: number): string => `amqp://guest:guest@127.0.0.1:${port}/`;

/** Whether the broker answers AMQP 0-9-1's protocol header with connection.start. */
function acceptsAmqp(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = connect({ host: '127.0.0.1', port });
    const done = (ok: boolean) => {
      socket.destroy();
      resolve(ok);
    };
    socket.setTimeout(2_000, () => done(false));
    socket.once('error', () => done(false));
    socket.once('connect', () => socket.write(Buffer.from('AMQP\x00\x00\x09\x01', 'latin1')));
    socket.once('data', (frame: Buffer) =>
      done(frame.length >= 11 && frame[0] === 1 && frame.readUInt32BE(7) === 0x000a000a)
    );
  });
}

/** Waits until the broker on `port` accepts AMQP (up to `timeoutMs`, 120 s by default). */
export async function waitForAmqp(port: number, timeoutMs = 120_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await acceptsAmqp(port))) {
    if (Date.now() > deadline)
      throw new Error(`RabbitMQ did not accept AMQP on 127.0.0.1:${port} within ${timeoutMs / 1000} s`);
    await new Promise((resolve) => setTimeout(resolve, 250));
  }
}
