/**
 * Writes a generated fleet file: `count` hosts `<prefix>1` … `<prefix><count>`, all of one shape (by
 * default the default fleet's node-1: 16 vCPUs, 64 GiB, 1 TB, AVX2), round-robin over the zones.
 *
 *   npm run fleet -- --hosts 1000 --out data/fleet-1000.json
 *   npm run fleet -- --hosts 50 --prefix edge- --vcpus 8 --memory-mb 32768 --disk-gb 500 --zones 3
 *
 * Then serve it from one compute process: FLEET_FILE=data/fleet-1000.json COMPUTE_HOSTS=all npm run worker:compute
 * (or COMPUTE_HOSTS=node-1..node-1000). Without --out it prints the fleet.
 */
import { writeFileSync } from 'node:fs';
import { parseArgs } from 'node:util';

import { DEFAULT_GENERATED_HOST, generateFleet } from '../src/domain/fleet';

function main(): void {
  const { values } = parseArgs({
    options: {
      hosts: { type: 'string', default: '1000' },
      prefix: { type: 'string', default: 'node-' },
      vcpus: { type: 'string', default: String(DEFAULT_GENERATED_HOST.vcpus) },
      'memory-mb': { type: 'string', default: String(DEFAULT_GENERATED_HOST.memoryMb) },
      'disk-gb': { type: 'string', default: String(DEFAULT_GENERATED_HOST.diskGb) },
      zones: { type: 'string', default: String(DEFAULT_GENERATED_HOST.zones) },
      trait: { type: 'string', multiple: true },
      out: { type: 'string' },
    },
  });
  const int = (name: string, text: string | undefined): number => {
    const n = Number(text);
    if (!Number.isInteger(n) || n < 1) throw new Error(`--${name} must be a positive integer, not '${text}'`);
    return n;
  };
  const fleet = generateFleet(int('hosts', values.hosts), values.prefix, {
    vcpus: int('vcpus', values.vcpus),
    memoryMb: int('memory-mb', values['memory-mb']),
    diskGb: int('disk-gb', values['disk-gb']),
    zones: int('zones', values.zones),
    traits: values.trait ?? DEFAULT_GENERATED_HOST.traits,
  });
  const text = `${JSON.stringify(fleet, null, 1)}\n`;
  if (values.out) {
    writeFileSync(values.out, text);
    console.log(`wrote ${fleet.hosts.length} hosts to ${values.out}`);
  } else process.stdout.write(text);
}

try {
  main();
} catch (err) {
  console.error(`fleet: ${(err as Error).message}`);
  process.exit(2);
}
