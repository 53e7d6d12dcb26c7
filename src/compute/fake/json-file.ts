/**
 * Small JSON files that a compute host owns (its guests' files, its injected faults): read whole, written whole
 * through a temp file and a rename (write-file-atomic), so a reader or a restarted worker never sees a
 * torn file; read-modify-write cycles of one file run one at a time (a Slots of 1).
 */
import { mkdirSync, readFileSync, statSync } from 'node:fs';
import { unlink } from 'node:fs/promises';
import path from 'node:path';
import writeFileAtomic from 'write-file-atomic';

import { Slots } from '../../shared/slots';

/**
 * Reads and parses a JSON file; `undefined` when the file does not exist. Synchronous underneath: these
 * files are a few KB on the host's own disk, read at every step of a guest (the faults file, a guest file
 * another writer changed), and a read through libuv's thread pool costs several times the CPU of the read
 * itself (with an error object made and thrown for every absent file).
 */
export function readJsonFile(file: string): Promise<unknown> {
  // A throw in the executor rejects the promise.
  return new Promise((resolve) => resolve(readJsonFileNow(file)));
}

function readJsonFileNow(file: string): unknown {
  if (statSync(file, { throwIfNoEntry: false }) === undefined) return undefined;
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (err) {
    if (isNotFound(err)) return undefined; // removed since the stat
    throw err;
  }
  return JSON.parse(text) as unknown;
}

/**
 * Writes `value` as JSON to a sibling temp file, then renames it over `file` (creating the folder). A crash
 * leaves either the old or the new content, never half of one. (No fsync: this guards against a process
 * dying, which is what the fake models, not against the machine losing power.)
 */
export async function writeJsonFileAtomic(file: string, value: unknown): Promise<void> {
  await writeTextFileAtomic(file, `${JSON.stringify(value, null, 2)}\n`);
}

/**
 * The same for text already serialised (a caller that has it at hand need not serialise twice). The
 * folder is made when the write finds none (the first write of a host), not checked before every write.
 * write-file-atomic's synchronous form: a guest file is a few KB, and the asynchronous form's five trips
 * through libuv's thread pool (open, write, close, rename, and its exit handler) cost about four times
 * the CPU of the write (0.25 against 1 ms a write, measured); the worker's event loop waits a fraction of
 * a millisecond.
 */
export function writeTextFileAtomic(file: string, text: string): Promise<void> {
  return new Promise((resolve) => resolve(writeTextFileAtomicNow(file, text)));
}

function writeTextFileAtomicNow(file: string, text: string): void {
  const write = () => writeFileAtomic.sync(file, text, { encoding: 'utf8', fsync: false });
  try {
    write();
  } catch (err) {
    if (!isNotFound(err)) throw err;
    mkdirSync(path.dirname(file), { recursive: true });
    write();
  }
}

/** Removes a file (atomically: a reader sees it or not); nothing when it is absent. */
export async function removeFile(file: string): Promise<void> {
  try {
    await unlink(file);
  } catch (err) {
    if (!isNotFound(err)) throw err;
  }
}

const locks = new Map<string, Slots>();

/**
 * Runs `fn` while holding an in-process lock on `key` (a file path), so read-modify-write cycles of the
 * same file never interleave, even across several objects pointing at it. One compute worker process
 * serves one host, so an in-process lock is all the fake needs. A lock no one holds or waits for is
 * dropped (a host's guests each have a file, so the keys would otherwise grow with every guest ever made).
 */
export async function withFileLock<T>(key: string, fn: () => Promise<T>): Promise<T> {
  let lock = locks.get(key);
  if (lock === undefined) {
    lock = new Slots(1);
    locks.set(key, lock);
  }
  try {
    return await lock.run(fn);
  } finally {
    if (lock.running === 0 && lock.waiting === 0 && locks.get(key) === lock) locks.delete(key);
  }
}

function isNotFound(err: unknown): boolean {
  return err instanceof Error && (err as NodeJS.ErrnoException).code === 'ENOENT';
}
