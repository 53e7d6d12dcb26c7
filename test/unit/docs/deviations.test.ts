import { readFileSync } from 'node:fs';

import { describe, expect, it } from 'vitest';

import { DEVIATIONS_PAGE, expectedPage, notesOf } from '../../../scripts/deviations';

describe('docs/deviations.md', () => {
  it('lists every NOTE(nova) in src, as the code says it (npm run docs:deviations regenerates it)', () => {
    const page = readFileSync(DEVIATIONS_PAGE, 'utf8');
    expect(page).toBe(expectedPage(page));
  });

  it('takes a note to the end of its comment paragraph, in line and block comments', () => {
    const source = [
      '/**',
      ' * Something. NOTE(nova): the first',
      ' * goes on here.',
      ' *',
      ' * Not this.',
      ' */',
      'x(); // NOTE(nova): a trailing one',
      '// NOTE(nova): a line comment',
      '// that continues.',
      'y();',
    ].join('\n');
    expect(notesOf(source)).toEqual(['the first goes on here.', 'a trailing one', 'a line comment that continues.']);
  });
});
