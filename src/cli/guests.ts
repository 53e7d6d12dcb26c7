/**
 * `npm run guests -- list | stop-all`: the real guests (QEMU processes) of a data directory, found by
 * their pid files, with no worker, store or Temporal needed. A QEMU guest outlives its compute worker
 * (as a hypervisor's guests outlive nova-compute), so Ctrl-C of `make start` leaves them running; this
 * is how an operator sees and stops them all.
 *
 * The QEMU driver keeps, per instance, `$DATA_DIR/instances/<instanceId>/qemu.<host>.pid` (and in
 * `<instanceId>_resize/` while a resize waits for confirm or revert). A pid is taken for that guest only
 * when the process is alive, not a zombie, and its command line carries `guest=<instanceId>,` (QEMU's
 * `-name`): a pid reused by something else is never signalled.
 *
 * stop-all sends SIGTERM (QEMU exits at once, like a power cut: no ACPI), waits, then SIGKILLs what is
 * left. It leaves the instance records alone: a compute worker that starts later finds its guests off.
 */
import { readdir, readFile } from 'node:fs/promises';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';

import { loadEnv } from '../workers/config';

export interface GuestProcess {
  instanceId: string;
  host: string;
  pid: number;
  /** The instance directory holding the pid file (`<id>` or `<id>_resize`). */
  dir: string;
}

const PID_FILE = /^qemu\.(.+)\.pid$/;

/** The live guest processes of a data directory, by their pid files. */
export async function findGuestProcesses(dataDir: string): Promise<GuestProcess[]> {
  const instancesDir = path.join(dataDir, 'instances');
  let dirs: string[];
  try {
    dirs = await readdir(instancesDir);
  } catch {
    return [];
  }
  const found: GuestProcess[] = [];
  for (const name of dirs.sort()) {
    const instanceId = name.replace(/_resize$/, '');
    const dir = path.join(instancesDir, name);
    const files = await readdir(dir).catch(() => [] as string[]);
    for (const file of files) {
      const host = PID_FILE.exec(file)?.[1];
      if (host === undefined) continue;
      const pid = Number((await readFile(path.join(dir, file), 'utf8').catch(() => '')).trim());
      if (Number.isSafeInteger(pid) && pid > 1 && (await isGuestProcess(pid, instanceId)))
        found.push({ instanceId, host, pid, dir });
    }
  }
  return found;
}

/** Alive, not a zombie, and QEMU's `-name guest=<instanceId>,…` on its command line. */
export async function isGuestProcess(pid: number, instanceId: string): Promise<boolean> {
  try {
    const stat = await readFile(`/proc/${pid}/stat`, 'utf8');
    // The state follows the parenthesised command name, which may itself hold spaces or parentheses.
    const state = stat.slice(stat.lastIndexOf(')') + 2, stat.lastIndexOf(')') + 3);
    if (state === 'Z' || state === 'X') return false;
    const cmdline = (await readFile(`/proc/${pid}/cmdline`, 'utf8')).split('\0');
    return cmdline.some((arg) => arg.startsWith(`guest=${instanceId},`) || arg === `guest=${instanceId}`);
  } catch {
    return false;
  }
}

/** SIGTERM to every guest of the data directory, then SIGKILL to those still there after `graceMs`. */
export async function stopAllGuests(
  dataDir: string,
  graceMs = 5000
): Promise<{ stopped: GuestProcess[]; killed: GuestProcess[] }> {
  const guests = await findGuestProcesses(dataDir);
  for (const g of guests) signal(g.pid, 'SIGTERM');
  const deadline = Date.now() + graceMs;
  let left = guests;
  while (left.length > 0 && Date.now() < deadline) {
    await sleep(100);
    left = await stillThere(left);
  }
  for (const g of left) signal(g.pid, 'SIGKILL');
  return { stopped: guests, killed: left };
}

async function stillThere(guests: GuestProcess[]): Promise<GuestProcess[]> {
  const alive = await Promise.all(guests.map((g) => isGuestProcess(g.pid, g.instanceId)));
  return guests.filter((_, i) => alive[i]);
}

function signal(pid: number, name: NodeJS.Signals): void {
  try {
    process.kill(pid, name);
  } catch {
    // Gone meanwhile.
  }
}

const USAGE = 'usage: npm run guests -- list | stop-all   (the QEMU guests of $DATA_DIR)';

async function main(argv: string[]): Promise<number> {
  const { DATA_DIR } = loadEnv();
  const [command, ...rest] = argv;
  if (rest.length > 0 || (command !== 'list' && command !== 'stop-all')) {
    console.error(USAGE);
    return 2;
  }
  if (command === 'list') {
    const guests = await findGuestProcesses(DATA_DIR);
    for (const g of guests) console.log(`${g.instanceId}\t${g.host}\t${g.pid}\t${g.dir}`);
    console.error(`${guests.length} guest process(es) under ${path.join(DATA_DIR, 'instances')}`);
    return 0;
  }
  const { stopped, killed } = await stopAllGuests(DATA_DIR);
  for (const g of stopped) console.log(`stopped ${g.instanceId} on ${g.host} (pid ${g.pid})`);
  console.error(
    `${stopped.length} guest(s) stopped under ${path.join(DATA_DIR, 'instances')}` +
      (killed.length > 0 ? `, ${killed.length} of them killed after the grace period` : '')
  );
  return 0;
}

if (require.main === module) {
  main(process.argv.slice(2)).then(
    (code) => process.exit(code),
    (err: unknown) => {
      console.error(`guests: ${(err as Error).message}`);
      process.exit(1);
    }
  );
}
