/**
 * The lock file is what `npm ci` installs (make install, .ci/run, the Dockerfile). It must be in step
 * with package.json and complete: every platform's optional packages recorded, not only this
 * machine's, or `npm ci` refuses it on a fresh clone.
 */
import { execFile } from 'node:child_process';
import { copyFileSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';

import { afterEach, describe, expect, it } from 'vitest';

const ROOT = path.resolve(__dirname, '..', '..', '..');
const run = promisify(execFile);

interface LockEntry {
  version?: string;
  optionalDependencies?: Record<string, string>;
}
interface LockFile {
  packages: Record<string, LockEntry>;
}

const dirs: string[] = [];
afterEach(() => {
  for (const dir of dirs.splice(0)) rmSync(dir, { recursive: true, force: true });
});

/** `npm ci --dry-run` on a copy of the manifest and lock: npm's own in-sync check, nothing installed. */
async function npmCiDryRun(manifest: string): Promise<{ ok: boolean; output: string }> {
  const dir = mkdtempSync(path.join(tmpdir(), 'lock-check-'));
  dirs.push(dir);
  writeFileSync(path.join(dir, 'package.json'), manifest);
  copyFileSync(path.join(ROOT, 'package-lock.json'), path.join(dir, 'package-lock.json'));
  try {
    const { stdout, stderr } = await run(
      'npm',
      ['ci', '--dry-run', '--ignore-scripts', '--no-audit', '--no-fund', '--prefer-offline'],
      { cwd: dir, env: { ...process.env, npm_config_loglevel: 'error' } }
    );
    return { ok: true, output: stdout + stderr };
  } catch (error) {
    const { stdout = '', stderr = '' } = error as { stdout?: string; stderr?: string };
    return { ok: false, output: stdout + stderr };
  }
}

const manifest = readFileSync(path.join(ROOT, 'package.json'), 'utf8');

describe('package-lock.json', () => {
  it('is in step with package.json: npm ci accepts it', async () => {
    const result = await npmCiDryRun(manifest);
    expect(result.output).not.toContain('EUSAGE');
    expect(result.ok).toBe(true);
  });

  it('is refused by the same check when a dependency in package.json changes', async () => {
    const edited = JSON.parse(manifest) as { dependencies: Record<string, string> };
    expect(edited.dependencies.zod).toBeDefined();
    edited.dependencies.zod = '3.0.0';
    const result = await npmCiDryRun(JSON.stringify(edited, null, 2));
    expect(result.ok).toBe(false);
    expect(result.output).toContain('EUSAGE');
  });

  it('records every optional platform package a locked package declares', () => {
    const lock = JSON.parse(readFileSync(path.join(ROOT, 'package-lock.json'), 'utf8')) as LockFile;
    const missing = Object.entries(lock.packages).flatMap(([where, entry]) =>
      Object.keys(entry.optionalDependencies ?? {})
        .filter((name) => lock.packages[`node_modules/${name}`] === undefined)
        .filter((name) => lock.packages[`${where}/node_modules/${name}`] === undefined)
        .map((name) => `${where || '(root)'} → ${name}`)
    );
    expect(missing).toEqual([]);
  });
});
