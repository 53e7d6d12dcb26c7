/**
 * Which QEMU accelerator a guest runs under. TCG (software emulation) unless the host has hardware KVM:
 * `/sys/module/kvm_intel` or `kvm_amd` with `vmx`/`svm` in /proc/cpuinfo. A PVM host (`/sys/module/kvm_pvm`)
 * opens /dev/kvm fine and `query-kvm` says enabled, but a stock kernel spins in its decompressor there
 * (it runs only PVM-enlightened guest kernels, which Debian does not ship): it gets TCG.
 * QEMU's own `-accel kvm -accel tcg` fallback cannot tell, so it is never used.
 */
import { existsSync, readFileSync } from 'node:fs';

export type Accel = 'tcg' | 'kvm';

export interface AccelProbe {
  accel: Accel;
  /** Why, for the worker's start-up log. */
  reason: string;
}

export interface AccelHost {
  exists(path: string): boolean;
  read(path: string): string;
}

const realHost: AccelHost = {
  exists: existsSync,
  read: (p) => {
    try {
      return readFileSync(p, 'utf8');
    } catch {
      return '';
    }
  },
};

/** `QEMU_ACCEL=tcg|kvm` forces one; otherwise the host decides, as above. */
export function detectAccel(env: NodeJS.ProcessEnv = process.env, host: AccelHost = realHost): AccelProbe {
  const forced = env.QEMU_ACCEL;
  if (forced === 'tcg' || forced === 'kvm') return { accel: forced, reason: `QEMU_ACCEL=${forced}` };
  if (forced) throw new Error(`QEMU_ACCEL must be tcg or kvm, not '${forced}'`);
  if (!host.exists('/dev/kvm')) return { accel: 'tcg', reason: 'no /dev/kvm' };
  if (host.exists('/sys/module/kvm_pvm'))
    return { accel: 'tcg', reason: 'KVM here is PVM (kvm_pvm): a stock guest kernel does not boot under it' };
  const hardware = host.exists('/sys/module/kvm_intel') || host.exists('/sys/module/kvm_amd');
  const flags = /^flags\s*:.*\b(vmx|svm)\b/m.test(host.read('/proc/cpuinfo'));
  if (hardware && flags) return { accel: 'kvm', reason: 'hardware KVM (kvm_intel/kvm_amd, vmx/svm)' };
  return { accel: 'tcg', reason: 'no hardware virtualisation (no kvm_intel/kvm_amd with vmx/svm)' };
}

/** The `-accel` argument: TCG's translation cache capped (its default 1 GiB is per process). */
export function accelArg(accel: Accel): string {
  return accel === 'kvm' ? 'kvm' : 'tcg,tb-size=64';
}
