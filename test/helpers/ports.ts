import { readFileSync } from 'node:fs';
import { createServer } from 'node:net';

/** The lowest port of the kernel's ephemeral range (what outgoing connections and port 0 are given). */
function ephemeralLow(): number {
  try {
    const low = Number(readFileSync('/proc/sys/net/ipv4/ip_local_port_range', 'utf8').trim().split(/\s+/)[0]);
    return Number.isInteger(low) && low > 21_000 ? low : 32_768;
  } catch {
    return 32_768;
  }
}

const LOW = 20_000;
const HIGH = Math.min(ephemeralLow(), 32_768); // below 32768 too: Temporal keeps membership ports as smallint
const handed = new Set<number>();

function bindable(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const server = createServer();
    server.once('error', () => resolve(false));
    server.listen(port, '127.0.0.1', () => server.close(() => resolve(true)));
  });
}

/**
 * A TCP port free on loopback right now, below the kernel's ephemeral range: a port from that range
 * (what `listen(0)` gives) can be taken by any process's outgoing connection between the pick and the
 * server's bind ("address already in use"). Never the same port twice in one process.
 */
export async function freePort(): Promise<number> {
  for (;;) {
    const candidate = LOW + Math.floor(Math.random() * (HIGH - LOW));
    if (handed.has(candidate)) continue;
    handed.add(candidate);
    if (await bindable(candidate)) return candidate;
  }
}
