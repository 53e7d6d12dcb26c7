/**
 * The README's first session runs as written: every shell block the README marks as part of it (the
 * `<!-- first-session: … -->` comment right before its fence) is extracted from README.md, split into its
 * commands, and each command is run in order, exactly as written (through bash, from the repository
 * root), against a `make start` stack: the launcher (src/workers/launcher.ts) with the default fleet, on
 * free ports. The environment only says where that stack is (TEMPORAL_ADDRESS, DATA_DIR), as a newcomer's
 * defaults would. Each command must succeed; so the docs cannot drift from what works.
 */
import { readFileSync } from 'node:fs';
import path from 'node:path';

import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';

import { FleetSchema } from '../../src/domain/fleet';
import { LauncherStack } from '../faults/launcher-stack';
import { ROOT, runProcess } from '../helpers/cli';

const MARKER = /^<!-- first-session\b.*-->$/;

/** The first-session commands of a README, in order: each a complete shell command (continuations joined). */
export function firstSessionCommands(readme: string): string[] {
  const lines = readme.split('\n');
  const commands: string[] = [];
  for (let i = 0; i < lines.length; i++) {
    if (!MARKER.test(lines[i] ?? '')) continue;
    let fence = i + 1;
    while (lines[fence] === '') fence++; // prettier puts a blank line between the comment and the fence
    if (lines[fence] !== '```sh')
      throw new Error(`README line ${fence + 1}: a first-session marker without its sh block`);
    let pending = '';
    for (let j = fence + 1; ; j++) {
      const line = lines[j];
      if (line === undefined) throw new Error(`README line ${i + 1}: a first-session block without its closing fence`);
      if (line === '```') break;
      if (pending === '' && (line.trim() === '' || line.trim().startsWith('#'))) continue;
      pending += (pending ? '\n' : '') + line;
      // A command goes on after a trailing backslash, or while a single-quoted string is open.
      const quotes = (pending.replace(/#[^'\n]*$/, '').match(/'/g) ?? []).length;
      if (line.endsWith('\\') || quotes % 2 === 1) continue;
      commands.push(pending);
      pending = '';
    }
  }
  return commands;
}

describe("the README's first session, pasted as written on a fresh `make start`", () => {
  const readme = readFileSync(path.join(ROOT, 'README.md'), 'utf8');
  const commands = firstSessionCommands(readme);
  const fleet = FleetSchema.parse(JSON.parse(readFileSync(path.join(ROOT, 'fleet', 'default.json'), 'utf8')));
  let stack: LauncherStack;

  beforeAll(async () => {
    stack = new LauncherStack(fleet.hosts, 1);
    await stack.startLauncher({ RECONCILE_PERIOD_SECONDS: '0' });
  });
  afterAll(async () => {
    await stack?.dispose();
  });

  it('extracts the marked blocks: build, groups, several at once, resize, stop, live migration, delete', () => {
    expect(commands.length).toBeGreaterThanOrEqual(20);
    expect(commands[0]).toMatch(/^npm run temporal -- workflow execute --type buildInstance .*\\\n/);
    // The group is created before the multi-create that names it; no placeholder is left to fill in.
    const group = commands.findIndex((c) => c.includes('server-group create spread'));
    const multi = commands.findIndex((c) => c.includes('"schedulerHints": {"group": "spread"}'));
    expect(group).toBeGreaterThan(0);
    expect(multi).toBeGreaterThan(group);
    expect(commands.filter((c) => c.includes('<'))).toEqual([]);
    // The resize is confirmed through a command that waits for the resize first.
    const resize = commands.findIndex((c) => c.startsWith('npm run conductor -- resize vm2'));
    expect(commands[resize + 1]).toMatch(/^npm run conductor -- confirm vm2/);
  });

  it('runs each command, in order, exactly as written: each succeeds', async () => {
    const env = {
      TEMPORAL_ADDRESS: stack.address,
      TEMPORAL_NAMESPACE: 'default',
      DATA_DIR: stack.dataDir,
      FLEET_FILE: stack.fleetFile,
      TEMPORAL_CLI_PATH: inject('temporalCli'),
      DATABASE_URL: undefined,
      CATALOGUE_FILE: undefined,
      TEMPORAL_CONFIG_FILE: undefined,
      TEMPORAL_PROFILE: undefined,
    };
    for (const command of commands) {
      const run = await runProcess('/bin/bash', ['-c', command], env);
      expect(
        run.code,
        `\`${command}\` exited ${run.code}\n--- stdout\n${run.stdout}\n--- stderr\n${run.stderr}\n${stack.logs(40)}`
      ).toBe(0);
    }
  }, 900_000);
});
