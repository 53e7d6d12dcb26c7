/**
 * Runs once per `vitest run` for the `guests` project: builds the guest images (kernel, initramfs, qcow2
 * bases) with scripts/build-guest-images.sh unless they are there already (the script is idempotent, a
 * second run only checks its stamp), and says where they are.
 */
import { execFileSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import path from 'node:path';

import type { TestProject } from 'vitest/node' with { 'resolution-mode': 'import' };

import { defaultImageDir } from '../../src/compute/qemu';

declare module 'vitest' {
  export interface ProvidedContext {
    guestImageDir: string;
  }
}

export default function setup(project: TestProject): void {
  const dir = defaultImageDir();
  const wanted = ['vmlinuz', 'initrd.gz', 'cirros.qcow2', 'stubborn.qcow2', 'dirty.qcow2'];
  if (!wanted.every((f) => existsSync(path.join(dir, f)))) {
    execFileSync('bash', [path.join(__dirname, '..', '..', 'scripts', 'build-guest-images.sh')], {
      stdio: 'inherit',
      env: { ...process.env, GUEST_IMAGE_DIR: dir },
    });
  }
  project.provide('guestImageDir', dir);
}
