import { type ChildProcess, spawn } from 'node:child_process';
import { mkdir, writeFile } from 'node:fs/promises';
import path from 'node:path';

import { afterEach, beforeEach, describe, expect, it } from 'vitest';

import { findGuestProcesses, stopAllGuests } from '../../../src/cli/guests';
import { makeStateDir } from '../compute/helpers';

/** A stand-in for a QEMU process: a node that idles with QEMU's `-name guest=<id>,…` on its command line. */
function fakeQemu(marker: string, ignoreTerm = false): ChildProcess {
  const script = `${ignoreTerm ? "process.on('SIGTERM', () => {});" : ''} setInterval(() => {}, 1000); console.log('ready');`;
  return spawn(process.execPath, ['-e', script, '--', '-name', marker], { stdio: ['ignore', 'pipe', 'ignore'] });
}

/** Resolves once the stand-in has set itself up (its signal handler included). */
const ready = (child: ChildProcess) => new Promise((resolve) => child.stdout!.once('data', resolve));

const exited = (child: ChildProcess) =>
  child.exitCode !== null || child.signalCode !== null
    ? Promise.resolve(child.signalCode)
    : new Promise<NodeJS.Signals | null>((resolve) => child.once('exit', (_code, sig) => resolve(sig)));

describe('npm run guests (the QEMU guests of a data directory, by their pid files)', () => {
  let dir: string;
  let cleanup: () => Promise<void>;
  const children: ChildProcess[] = [];
  const pidFile = async (instanceDir: string, host: string, pid: number | string) => {
    await mkdir(path.join(dir, 'instances', instanceDir), { recursive: true });
    await writeFile(path.join(dir, 'instances', instanceDir, `qemu.${host}.pid`), `${pid}\n`);
  };

  beforeEach(async () => {
    ({ dir, cleanup } = await makeStateDir());
  });
  afterEach(async () => {
    for (const c of children.splice(0)) if (c.exitCode === null && c.signalCode === null) c.kill('SIGKILL');
    await cleanup();
  });

  it('finds each live guest by its pid file, never a reused pid or a dead one', async () => {
    const a = fakeQemu('guest=inst-a,debug-threads=on');
    const resized = fakeQemu('guest=inst-b,debug-threads=on');
    const stranger = fakeQemu('guest=someone-else,debug-threads=on');
    children.push(a, resized, stranger);
    await pidFile('inst-a', 'qemu-1', a.pid!);
    await pidFile('inst-b_resize', 'qemu-2', resized.pid!);
    await pidFile('inst-c', 'qemu-1', stranger.pid!); // the pid now runs something else
    await pidFile('inst-d', 'qemu-3', 999_999_999); // long gone
    await pidFile('inst-e', 'qemu-3', 'garbage');
    expect(await findGuestProcesses(dir)).toEqual([
      { instanceId: 'inst-a', host: 'qemu-1', pid: a.pid, dir: path.join(dir, 'instances', 'inst-a') },
      { instanceId: 'inst-b', host: 'qemu-2', pid: resized.pid, dir: path.join(dir, 'instances', 'inst-b_resize') },
    ]);
    expect(await findGuestProcesses(path.join(dir, 'nothing-here'))).toEqual([]);
  });

  it('stop-all ends every guest (SIGTERM, then SIGKILL past the grace period) and nothing else', async () => {
    const polite = fakeQemu('guest=inst-a,debug-threads=on');
    const stubborn = fakeQemu('guest=inst-b,debug-threads=on', true);
    const stranger = fakeQemu('guest=someone-else,debug-threads=on');
    children.push(polite, stubborn, stranger);
    await pidFile('inst-a', 'qemu-1', polite.pid!);
    await pidFile('inst-b', 'qemu-1', stubborn.pid!);
    await pidFile('inst-c', 'qemu-2', stranger.pid!);
    await Promise.all([polite, stubborn, stranger].map(ready));

    const { stopped, killed } = await stopAllGuests(dir, 1000);
    expect(stopped.map((g) => g.instanceId)).toEqual(['inst-a', 'inst-b']);
    expect(killed.map((g) => g.instanceId)).toEqual(['inst-b']);
    expect(await exited(polite)).toBe('SIGTERM');
    expect(await exited(stubborn)).toBe('SIGKILL');
    expect(stranger.exitCode === null && stranger.signalCode === null).toBe(true);
    expect(await findGuestProcesses(dir)).toEqual([]);
  });
});
