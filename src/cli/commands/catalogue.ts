/**
 * `flavors` and `images`: the catalogue the workers build from (the defaults, with CATALOGUE_FILE merged
 * over them), so a newcomer sees what `boot --flavor` and `--image` accept.
 */
import type { Command } from 'commander';

import type { Catalogue } from '../../domain/catalogue';
import { loadCatalogue } from '../../workers/catalogue-file';
import { EXIT_OK, instances, printJson } from '../context';
import type { Context, Run } from '../context';
import { table } from '../table';

/** The catalogue of this environment: the one the conductor and scheduler workers load. */
export function catalogueOf(ctx: Context): Catalogue {
  return loadCatalogue(ctx.env.CATALOGUE_FILE);
}

function flavors(ctx: Context): number {
  const rows = catalogueOf(ctx).flavors;
  if (ctx.json) printJson(rows);
  else
    console.log(
      table(
        ['NAME', 'VCPUS', 'RAM MB', 'DISK GB', 'EXTRA SPECS'],
        rows.map((f) => [
          f.name,
          f.vcpus,
          f.memoryMb,
          f.diskGb,
          Object.entries(f.extraSpecs)
            .map(([k, v]) => `${k}=${v}`)
            .join(', ') || null,
        ])
      )
    );
  return EXIT_OK;
}

/** The catalogue's images, then the stored ones (snapshots) that are not deleted, with their status. */
async function images(ctx: Context): Promise<number> {
  // A store not yet made (nothing was ever built) holds no snapshots.
  const stored = (
    await instances(ctx)
      .then((repo) => repo.listImages())
      .catch(() => [])
  ).filter((i) => i.status !== 'deleted');
  const rows = [...catalogueOf(ctx).images.map((i) => ({ ...i, status: 'active' })), ...stored];
  if (ctx.json) printJson(rows);
  else
    console.log(
      table(
        ['NAME', 'STATUS', 'SIZE GB', 'MIN DISK GB', 'MIN RAM MB', 'ARCH', 'TRAITS REQUIRED'],
        rows.map((i) => [
          i.name,
          i.status,
          i.sizeGb,
          i.minDiskGb,
          i.minRamMb,
          i.properties.hwArchitecture,
          i.properties.traitsRequired.join(', ') || null,
        ])
      )
    );
  return EXIT_OK;
}

export function register(program: Command, run: Run): void {
  program
    .command('flavors')
    .description('the flavors boot and resize accept (with CATALOGUE_FILE merged over the defaults)')
    .action(() => run((ctx) => Promise.resolve(flavors(ctx))));
  program
    .command('images')
    .description('the images boot and rebuild accept (CATALOGUE_FILE merged over the defaults, then snapshots)')
    .action(() => run((ctx) => images(ctx)));
}
