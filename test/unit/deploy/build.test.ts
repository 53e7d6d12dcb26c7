/**
 * `npm run build` compiles src/ to plain JavaScript that node runs without tsx (the Docker image runs
 * dist/src/workers/<role>-worker.js). Compiled here with the same tsconfig.build.json into
 * test-artifacts/ (inside the project, so node_modules resolves), then the CLIs run from it.
 */
import { execFile } from 'node:child_process';
import { existsSync, readFileSync, rmSync } from 'node:fs';
import path from 'node:path';
import { promisify } from 'node:util';

import { afterAll, beforeAll, describe, expect, it } from 'vitest';

import { ROOT, runCli } from '../../helpers/cli';

const run = promisify(execFile);
const OUT = path.join(ROOT, 'test-artifacts', 'build-check');

describe('npm run build', () => {
  beforeAll(async () => {
    rmSync(OUT, { recursive: true, force: true });
    await run(
      process.execPath,
      [path.join(ROOT, 'node_modules', 'typescript', 'bin', 'tsc'), '-p', 'tsconfig.build.json', '--outDir', OUT],
      {
        cwd: ROOT,
      }
    );
  }, 120_000);
  afterAll(() => rmSync(OUT, { recursive: true, force: true }));

  it('builds with tsconfig.build.json and writes the prebuilt workflow bundle', () => {
    const scripts = (
      JSON.parse(readFileSync(path.join(ROOT, 'package.json'), 'utf8')) as { scripts: Record<string, string> }
    ).scripts;
    expect(scripts.build).toBe('tsc -p tsconfig.build.json && tsx scripts/build-workflow-bundle.ts');
    for (const role of ['conductor', 'scheduler', 'compute'])
      expect(existsSync(path.join(OUT, 'src', 'workers', `${role}-worker.js`)), role).toBe(true);
  });

  it('runs the compiled conductor CLI with plain node: --help exits 0, a bad option exits 2', async () => {
    const cli = path.join(OUT, 'src', 'cli', 'conductor.js');
    const help = await runCli(cli, ['--help'], {});
    expect(help.code, help.stderr).toBe(0);
    expect(help.stdout).toContain('Usage: conductor');
    const bad = await runCli(
      cli,
      ['boot', 'vm', '--flavor', 'm1.tiny', '--image', 'cirros', '--max-attempts', 'x'],
      {}
    );
    expect(bad.code).toBe(2);
    expect(bad.stderr).toContain("option '--max-attempts <n>' argument 'x' is invalid");
  });

  it('runs the compiled placement audit with plain node', async () => {
    const help = await runCli(path.join(OUT, 'src', 'cli', 'audit.js'), ['--help'], {});
    expect(help).toMatchObject({ code: 0, stderr: '' });
    expect(help.stdout).toContain('usage:');
  });
});
