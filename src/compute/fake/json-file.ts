/**
 * Small JSON files that a compute host owns (its guests, its injected faults): read whole, written whole
 * through a temp file and a rename, so a reader or a restarted worker never sees a torn file.
 */
import { randomUUID } from 'node:crypto';
import { mkdir, readFile, rename, rm, writeFile } from 'node:fs/promises';
import path from 'node:path';

/** Reads and parses a JSON file; `undefined` when the file does not exist. */
export async function readJsonFile(file: string): Promise<unknown> {
  let text: string;
  try {
    text = await readFile(file, 'utf8');
  } catch (err) {
    if (isNotFound(err)) return undefined;
    throw err;
  }
  return JSON.parse(text) as unknown;
}

/**
 * Writes `value` as JSON to a sibling temp file, then renames it over `file`. rename(2) is atomic on one
 * file system, so a crash leaves either the old or the new content, never half of one. (No fsync: this
 * guards against a process dying, which is what the fake models, not against the machine losing power.)
 */
export async function writeJsonFileAtomic(file: string, value: unknown): Promise<void> {
  await mkdir(path.dirname(file), { recursive: true });
  const temp = `${file}.${process.pid}.${randomUUID()}.tmp`;
  try {
    await writeFile(temp, `${JSON.stringify(value, null, 2)}\n`, 'utf8');
    await rename(temp, file);
  } catch (err) {
    await rm(temp, { force: true });
    throw err;
  }
}

const lockTails = new Map<string, Promise<void>>();

/**
 * Runs `fn` while holding an in-process lock on `key` (a file path), so read-modify-write cycles of the
 * same file never interleave, even across several objects pointing at it. One compute worker process
 * serves one host, so an in-process lock is all the fake needs.
 */
export async function withFileLock<T>(key: string, fn: () => Promise<T>): Promise<T> {
  const previous = lockTails.get(key) ?? Promise.resolve();
  let release: () => void = () => undefined;
  const held = new Promise<void>((resolve) => (release = resolve));
  const tail = previous.then(() => held);
  lockTails.set(key, tail);
  await previous;
  try {
    return await fn();
  } finally {
    release();
    if (lockTails.get(key) === tail) lockTails.delete(key);
  }
}

function isNotFound(err: unknown): boolean {
  return err instanceof Error && (err as NodeJS.ErrnoException).code === 'ENOENT';
}
