/**
 * The order vitest runs test files in: longest first, so that the last files to start are short ones and
 * the two workers of a project finish together (a slow file started last runs alone at the end: the
 * temporal project's readme-first-session did, 2½ minutes with one worker idle). Vitest's own order uses
 * the durations of earlier runs from its cache, which a fresh clone (CI) does not have; it then runs the
 * larger files first, and size says little about time. Here: the cached duration when there is one, else
 * the committed one (`file-durations.json`, rewritten from a run's JSON report by `npm run
 * test:durations`), else first (a new file, not yet measured). Group order and projects as vitest has them.
 */
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

import { BaseSequencer, type TestSpecification } from 'vitest/node';

const DURATIONS_FILE = fileURLToPath(new URL('file-durations.json', import.meta.url));

/** Seconds per `<project>:<file>`, from the committed table. */
function committed(): Record<string, number> {
  return JSON.parse(readFileSync(DURATIONS_FILE, 'utf8')) as Record<string, number>;
}

export default class LongestFirstSequencer extends BaseSequencer {
  override sort(files: TestSpecification[]): Promise<TestSpecification[]> {
    const table = committed();
    const root = this.ctx.config.root;
    const key = (f: TestSpecification) => `${f.project.name}:${path.relative(root, f.moduleId)}`;
    const seconds = (f: TestSpecification) => {
      const cached = this.ctx.cache.getFileTestResults(key(f));
      return cached ? cached.duration / 1000 : (table[key(f)] ?? Number.POSITIVE_INFINITY);
    };
    return Promise.resolve(
      [...files].sort(
        (a, b) =>
          a.project.config.sequence.groupOrder - b.project.config.sequence.groupOrder ||
          a.project.name.localeCompare(b.project.name) ||
          seconds(b) - seconds(a)
      )
    );
  }
}
