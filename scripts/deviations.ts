/**
 * docs/deviations.md lists every deliberate difference from Nova, each written `NOTE(nova): …` in the
 * code where it is made. The page's first part (above the first `## src/` heading) is written by hand;
 * the rest is generated from the notes, file by file: `npm run docs:deviations` rewrites it, and the unit
 * test test/unit/docs/deviations.test.ts fails while the page is behind the code.
 */
import { readdirSync, readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';

const ROOT = path.resolve(__dirname, '..');
export const DEVIATIONS_PAGE = path.join(ROOT, 'docs', 'deviations.md');
const MARKER = 'NOTE(nova):';

function sourceFiles(dir: string): string[] {
  return readdirSync(dir, { withFileTypes: true })
    .flatMap((e) => (e.isDirectory() ? sourceFiles(path.join(dir, e.name)) : [path.join(dir, e.name)]))
    .filter((f) => f.endsWith('.ts'))
    .sort();
}

/** The comment text of a line (`// x`, ` * x`), or undefined for a line that is not a comment. */
function commentText(line: string): string | undefined {
  const m = /^\s*(?:\/\/|\/?\*+(?!\/))\s?(.*?)\s*(?:\*\/)?\s*$/.exec(line);
  return m ? m[1] : undefined;
}

/** Each note of one file: its text from the marker to the end of its comment paragraph. */
export function notesOf(source: string): string[] {
  const lines = source.split('\n');
  const notes: string[] = [];
  lines.forEach((line, i) => {
    const at = line.indexOf(MARKER);
    if (at < 0) return;
    const parts = [
      line
        .slice(at + MARKER.length)
        .replace(/\*\/\s*$/, '')
        .trim(),
    ];
    const lineComment = line.trimStart().startsWith('//') || /\s\/\/\s/.test(line.slice(0, at));
    for (let j = i + 1; j < lines.length && !/\*\/\s*$/.test(lines[j - 1] ?? ''); j++) {
      const next = lines[j]!;
      if (lineComment !== next.trimStart().startsWith('//')) break;
      const text = commentText(next);
      if (text === undefined || text === '' || text.includes(MARKER) || /^[-*] /.test(text) || /^@\w/.test(text)) break;
      parts.push(text);
      if (/\*\/\s*$/.test(next)) break;
    }
    notes.push(parts.join(' ').replace(/\s+/g, ' ').trim());
  });
  return notes;
}

/** The generated part of the page: a `## file` heading per file with notes, one bullet per note. */
export function generatedSection(): string {
  const out: string[] = [];
  for (const file of sourceFiles(path.join(ROOT, 'src'))) {
    const notes = notesOf(readFileSync(file, 'utf8'));
    if (notes.length === 0) continue;
    out.push(`## ${path.relative(ROOT, file)}`, '', ...notes.map((n) => `- ${n}`), '');
  }
  return out.join('\n');
}

/** The whole page as it should be: the hand-written head kept, the rest generated. */
export function expectedPage(current: string): string {
  const head = current.split(/^## src\//m)[0]!.trimEnd();
  return `${head}\n\n${generatedSection()}`;
}

if (require.main === module) {
  const current = readFileSync(DEVIATIONS_PAGE, 'utf8');
  const expected = expectedPage(current);
  if (process.argv.includes('--check')) {
    if (current !== expected) {
      console.error('docs/deviations.md is behind the NOTE(nova) comments in src: run npm run docs:deviations');
      process.exit(1);
    }
  } else if (current !== expected) {
    writeFileSync(DEVIATIONS_PAGE, expected);
    console.log('docs/deviations.md updated');
  }
}
