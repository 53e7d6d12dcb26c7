/**
 * Reads what a running process has in its environment (`/proc/<pid>/environ`, Linux) and finds store
 * credentials in it, for tests that check "compute holds no store credentials" on live processes:
 * the launcher's (`test/e2e/codec-launcher.test.ts`) and any other way of running the system (a
 * cluster's worker processes): `assertNoStoreCredentials(await computeWorkerPids(rootPid))`.
 */
import { readdirSync, readFileSync } from 'node:fs';

import { storeCredentialNames } from '../../src/workers/compute-env';

/**
 * The environment of process `pid`, as it was given at exec. A process still inside its execve reads as
 * empty (as does its command line): wait for its command line before trusting an empty answer.
 */
export function processEnvironment(pid: number): Record<string, string> {
  const raw = readFileSync(`/proc/${pid}/environ`, 'utf8');
  const env: Record<string, string> = {};
  for (const entry of raw.split('\0')) {
    const eq = entry.indexOf('=');
    if (eq > 0) env[entry.slice(0, eq)] = entry.slice(eq + 1);
  }
  return env;
}

/** The command line of process `pid`, its arguments joined by spaces. */
export function processCommandLine(pid: number): string {
  return readFileSync(`/proc/${pid}/cmdline`, 'utf8').split('\0').filter(Boolean).join(' ');
}

function parentPid(pid: number): number | undefined {
  try {
    // The command name (field 2) is in parentheses and may hold spaces: the fields after its last ')'.
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    return Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]);
  } catch {
    return undefined; // exited meanwhile
  }
}

/** Every live descendant of `root` (children, their children …). */
export function descendantPids(root: number): number[] {
  const parents = new Map<number, number>();
  for (const name of readdirSync('/proc')) {
    if (!/^\d+$/.test(name)) continue;
    const ppid = parentPid(Number(name));
    if (ppid !== undefined) parents.set(Number(name), ppid);
  }
  const out: number[] = [];
  const walk = (pid: number) => {
    for (const [child, ppid] of parents)
      if (ppid === pid) {
        out.push(child);
        walk(child);
      }
  };
  walk(root);
  return out;
}

/** The descendants of `root` that are compute worker processes (their command line names the compute worker). */
export function computeWorkerPids(root: number, pattern: RegExp = /compute-worker/): number[] {
  return descendantPids(root).filter((pid) => {
    try {
      return pattern.test(processCommandLine(pid));
    } catch {
      return false;
    }
  });
}

export interface CredentialFinding {
  pid: number;
  commandLine: string;
  /** The store credential variables found (DATABASE_URL, PG*, POSTGRES*, or any value that is a postgres:// URL). */
  variables: string[];
}

/** For each process, the store credentials in its environment (empty `variables`: none). */
export function storeCredentialsOf(pids: readonly number[]): CredentialFinding[] {
  return pids.map((pid) => ({
    pid,
    commandLine: processCommandLine(pid),
    variables: storeCredentialNames(processEnvironment(pid)),
  }));
}

/** Throws, naming the process and the variables, when any of `pids` has a store credential; none given also throws. */
export function assertNoStoreCredentials(pids: readonly number[]): void {
  if (pids.length === 0) throw new Error('no process to check (were the compute workers found?)');
  const bad = storeCredentialsOf(pids).filter((f) => f.variables.length > 0);
  if (bad.length > 0)
    throw new Error(
      `store credentials in compute processes: ${bad.map((f) => `pid ${f.pid} (${f.commandLine}): ${f.variables.join(', ')}`).join('; ')}`
    );
}
