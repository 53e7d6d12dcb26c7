/**
 * docs/workflows.md lists every workflow type in one table: exactly the types the worker's bundle
 * exports (src/workflows/index.ts), each with the file that defines it.
 */
import { readFileSync } from 'node:fs';
import path from 'node:path';

import { describe, expect, it } from 'vitest';

const ROOT = path.resolve(__dirname, '..', '..', '..');
const read = (file: string): string => readFileSync(path.join(ROOT, file), 'utf8');

/** The names src/workflows/index.ts exports (its `export { a, b } from './x'` lines). */
function exportedTypes(): string[] {
  const names = [...read('src/workflows/index.ts').matchAll(/^export \{([^}]*)\} from/gm)].flatMap((m) =>
    m[1]!.split(',').map((name) => name.trim())
  );
  return names.filter(Boolean).sort();
}

/** The table's rows: type and file. */
function tableRows(): { type: string; file: string }[] {
  return [...read('docs/workflows.md').matchAll(/^\|\s*`(\w+)`\s*\|\s*(\S+)\s*\|/gm)].map((m) => ({
    type: m[1]!,
    file: m[2]!,
  }));
}

describe('the workflow table (docs/workflows.md)', () => {
  it('lists exactly the exported workflow types, once each', () => {
    expect(
      tableRows()
        .map((r) => r.type)
        .sort()
    ).toEqual(exportedTypes());
  });

  it('names for each type the file that defines it', () => {
    for (const { type, file } of tableRows()) {
      expect({
        type,
        defined: new RegExp(`export (async function ${type}\\(|const ${type}\\b)`).test(read(file)),
      }).toEqual({
        type,
        defined: true,
      });
    }
  });
});
