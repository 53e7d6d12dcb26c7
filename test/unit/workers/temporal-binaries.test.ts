import { chmodSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';

import { afterEach, beforeEach, describe, expect, it } from 'vitest';

import {
  findTemporalBinary,
  missingBinaryMessage,
  TemporalBinaryNotFound,
} from '../../../src/workers/temporal-binaries';

describe('findTemporalBinary', () => {
  let dir: string;
  const fakeBinary = (folder: string, name: string) => {
    mkdirSync(folder, { recursive: true });
    const file = path.join(folder, name);
    writeFileSync(file, '#!/bin/sh\n');
    chmodSync(file, 0o755);
    return file;
  };

  beforeEach(() => {
    dir = mkdtempSync(path.join(tmpdir(), 'temporal-bin-'));
  });
  afterEach(() => rmSync(dir, { recursive: true, force: true }));

  it('prefers the env var, then PATH, then the local install', () => {
    const local = fakeBinary(path.join(dir, 'local'), 'temporal');
    const onPath = fakeBinary(path.join(dir, 'path'), 'temporal');
    const fromEnv = fakeBinary(path.join(dir, 'env'), 'my-temporal');
    const localBin = path.join(dir, 'local');
    expect(findTemporalBinary('cli', { PATH: path.join(dir, 'path'), TEMPORAL_CLI_PATH: fromEnv }, localBin)).toBe(
      fromEnv
    );
    expect(findTemporalBinary('cli', { PATH: path.join(dir, 'path') }, localBin)).toBe(onPath);
    expect(findTemporalBinary('cli', { PATH: '/nonexistent' }, localBin)).toBe(local);
  });

  it('finds nothing when the binaries are absent, without any network', () => {
    expect(findTemporalBinary('cli', { PATH: '/nonexistent' }, path.join(dir, 'none'))).toBeUndefined();
    expect(findTemporalBinary('test-server', { PATH: '' }, path.join(dir, 'none'))).toBeUndefined();
  });

  it('refuses an env var that points at nothing, naming it', () => {
    expect(() => findTemporalBinary('test-server', { TEMPORAL_TEST_SERVER_PATH: '/no/such/file' })).toThrow(
      new TemporalBinaryNotFound('TEMPORAL_TEST_SERVER_PATH=/no/such/file is not an executable file.')
    );
  });

  it('says in one line how to install a missing binary', () => {
    for (const which of ['cli', 'test-server'] as const) {
      const message = missingBinaryMessage(which);
      expect(message).not.toContain('\n');
      expect(message).toContain('npm run install:temporal');
    }
  });
});
