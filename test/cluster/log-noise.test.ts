/**
 * What `make cluster` prints, counted over a first start (fresh data) and a stop (Ctrl-C): no access log
 * line per Web UI request (off unless CLUSTER_UI_ACCESS_LOGS=1), no error line from PostgreSQL's set-up
 * or shutdown, and no "No workflows registered" warning from the workers that register none on purpose.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

import { HostSpecSchema } from '../../src/domain/fleet';
import { ClusterStack } from './cluster-stack';

const HOSTS = HostSpecSchema.array().parse([
  { name: 'ln-a', availabilityZone: 'ln', vcpus: 8, memoryMb: 16384, diskGb: 200 },
  { name: 'ln-b', availabilityZone: 'ln', vcpus: 8, memoryMb: 16384, diskGb: 200 },
]);

/** The lines of one process of the cluster's output (the supervisor prefixes each with its name). */
function linesOf(output: string, process: RegExp): string[] {
  return output.split('\n').filter((line) => process.test(line.split('|')[0]?.trim() ?? ''));
}

describe('make cluster: a start and a stop print no noise', () => {
  const stack = new ClusterStack(HOSTS, 1);
  let output = '';
  let exitCode: number | null = null;

  beforeAll(async () => {
    await stack.startCluster();
    // Three page loads of the Web UI, with their assets and API calls: what printed 521 access lines.
    const ui = `http://127.0.0.1:${stack.ports.TEMPORAL_UI_PORT}`;
    for (let i = 0; i < 3; i++) {
      const page = await (await fetch(`${ui}/`)).text();
      for (const asset of [...page.matchAll(/(?:src|href)="(\/_app\/[^"]+)"/g)].map((m) => m[1]))
        await (await fetch(`${ui}${asset}`)).arrayBuffer();
      await (await fetch(`${ui}/api/v1/namespaces/default/workflows`)).arrayBuffer();
      await (await fetch(`${ui}/api/v1/settings`)).arrayBuffer();
    }
    exitCode = await stack.stopCluster();
    output = stack.cluster?.output ?? '';
  }, 400_000);
  afterAll(() => stack.dispose());

  it('stops cleanly (exit 0)', () => {
    expect(exitCode, output.slice(-4000)).toBe(0);
  });

  it('the Web UI server logs no request', () => {
    const ui = linesOf(output, /^temporal-ui$/);
    console.log(`[log-noise] ${output.split('\n').length} lines in all, ${ui.length} from the Web UI server`);
    expect(ui.filter((l) => /"uri":|"method":|GET \//.test(l))).toEqual([]);
  });

  it('PostgreSQL prints no error on its first start nor at shutdown', () => {
    const pg = linesOf(output, /^postgres/);
    console.log(`[log-noise] ${pg.length} PostgreSQL lines`);
    expect(pg.filter((l) => /\b(ERROR|FATAL|PANIC):/.test(l))).toEqual([]);
  });

  it('no worker warns "No workflows registered"', () => {
    expect(output.split('\n').filter((l) => l.includes('No workflows registered'))).toEqual([]);
  });
});
