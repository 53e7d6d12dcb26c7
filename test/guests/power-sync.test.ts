/**
 * Power-state sync on a real guest (Nova's _sync_power_states): the launcher with one QEMU host and the
 * reconcile Schedule every RECONCILE_PERIOD seconds. A guest powered off behind the conductor's back (the
 * ACPI power button sent on the guest's own test QMP socket, not through the driver) makes its QEMU exit;
 * the next reconcile pass finds it `shutdown` and the instance ends `stopped`, with the sync's event on a
 * `stop` action, within one period. Then it is deleted: no QEMU process left, the audit clean, no
 * workflow running.
 */
import { type ChildProcess, execFile, spawn } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';

import { afterAll, beforeAll, describe, expect, inject, it, vi } from 'vitest';

import { findGuestProcesses, stopAllGuests } from '../../src/cli/guests';
import { QmpClient } from '../../src/compute/qemu';
import { runCli } from '../helpers/cli';
import { freePort } from '../helpers/ports';

const exec = promisify(execFile);
const ROOT = path.resolve(__dirname, '..', '..');
const HOST = 'qps-1';
const RECONCILE_PERIOD = 15;

describe('power-state sync on a real QEMU guest', () => {
  const dir = mkdtempSync(path.join(tmpdir(), 'qemu-power-sync-'));
  const dataDir = path.join(dir, 'data');
  let launcher: ChildProcess | undefined;
  let output = '';
  let port = 0;

  async function temporal<T>(...args: string[]): Promise<T> {
    const { stdout } = await exec(inject('temporalCli'), [...args, '--address', `127.0.0.1:${port}`, '-o', 'json'], {
      maxBuffer: 16 * 1024 * 1024,
    });
    return JSON.parse(stdout) as T;
  }
  async function execute<T>(type: string, input: unknown, id: string): Promise<T> {
    const out = await temporal<{ status: string; result: T }>(
      'workflow',
      'execute',
      '--type',
      type,
      '--task-queue',
      'conductor',
      '--workflow-id',
      id,
      '--input',
      JSON.stringify(input)
    );
    expect(out.status, `${type} ${JSON.stringify(input)}`).toBe('COMPLETED');
    return out.result;
  }
  const cliEnv = () => ({ DATA_DIR: dataDir, DATABASE_URL: undefined, TEMPORAL_ADDRESS: `127.0.0.1:${port}` });
  const conductor = (...args: string[]) => runCli(path.join(ROOT, 'src', 'cli', 'conductor.ts'), args, cliEnv());
  const show = async (instanceId: string) => {
    const shown = await conductor('show', instanceId, '--json');
    expect(shown.code, shown.stderr).toBe(0);
    return JSON.parse(shown.stdout) as {
      vmState: string;
      powerState: string;
      taskState: string | null;
      actions: Array<{ action: string; events: Array<{ event: string; result: string }> }>;
    };
  };

  beforeAll(async () => {
    port = await freePort();
    const fleetFile = path.join(dir, 'fleet.json');
    writeFileSync(
      fleetFile,
      JSON.stringify({ hosts: [{ name: HOST, availabilityZone: 'az1', vcpus: 2, memoryMb: 3072, diskGb: 100 }] })
    );
    launcher = spawn(process.execPath, ['--import', 'tsx', path.join(ROOT, 'src', 'workers', 'launcher.ts')], {
      cwd: ROOT,
      env: {
        ...process.env,
        COMPUTE_DRIVER: 'qemu',
        GUEST_IMAGE_DIR: inject('guestImageDir'),
        DATA_DIR: dataDir,
        FLEET_FILE: fleetFile,
        TEMPORAL_PORT: String(port),
        TEMPORAL_UI_PORT: String(await freePort()),
        API_PORT: String(await freePort()),
        TEMPORAL_CLI_PATH: inject('temporalCli'),
        RECONCILE_PERIOD_SECONDS: String(RECONCILE_PERIOD),
        LOG_LEVEL: 'WARN',
      },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    launcher.stdout?.on('data', (chunk: Buffer) => (output += chunk.toString()));
    launcher.stderr?.on('data', (chunk: Buffer) => (output += chunk.toString()));
    await vi.waitFor(
      () => {
        if (launcher?.exitCode !== null) throw new Error(`launcher exited:\n${output}`);
        expect(output).toContain('Conductor on Temporal is running');
      },
      { timeout: 170_000, interval: 250 }
    );
  }, 180_000);

  afterAll(async () => {
    launcher?.kill('SIGTERM');
    await stopAllGuests(dataDir, 2000);
    rmSync(dir, { recursive: true, force: true });
  }, 60_000);

  it('a guest powered off behind our back ends stopped within one reconcile period', async () => {
    try {
      const vm = await execute<{ instanceId: string; host: string }>(
        'buildInstance',
        { name: 'vm-self-off', flavor: 'm1.tiny', image: 'cirros' },
        'build-vm-self-off'
      );
      expect(vm.host).toBe(HOST);
      await vi.waitFor(
        async () => {
          const { output: text } = await execute<{ output: string }>(
            'consoleOutput',
            { instanceId: vm.instanceId },
            `console-${Date.now()}`
          );
          expect(text).toMatch(/GUEST-BOOT boot=1/);
        },
        { timeout: 90_000, interval: 1000 }
      );
      // The ACPI power button on the guest's own test socket: the driver is not told.
      const record = JSON.parse(
        readFileSync(path.join(dataDir, 'instances', vm.instanceId, `guest.${HOST}.json`), 'utf8')
      ) as { process: { testQmp: string } };
      const qmp = await QmpClient.connect(record.process.testQmp);
      await qmp.execute('system_powerdown');
      await qmp.close();
      await vi.waitFor(
        async () => expect((await findGuestProcesses(dataDir)).map((g) => g.instanceId)).not.toContain(vm.instanceId),
        { timeout: 60_000, interval: 500 }
      );
      const off = Date.now();
      expect((await show(vm.instanceId)).vmState).toBe('active');

      await vi.waitFor(async () => expect(await show(vm.instanceId)).toMatchObject({ vmState: 'stopped' }), {
        timeout: (RECONCILE_PERIOD + 30) * 1000,
        interval: 1000,
      });
      const seconds = (Date.now() - off) / 1000;
      console.log(`power-sync: the guest off, the instance stopped ${seconds.toFixed(1)} s later`);
      const shown = await show(vm.instanceId);
      expect(shown).toMatchObject({ vmState: 'stopped', powerState: 'shutdown', taskState: null });
      expect(
        shown.actions
          .filter((a) => a.events.some((e) => e.event === 'conductor_sync_power_state' && e.result === 'Success'))
          .map((a) => a.action)
      ).toEqual(['stop']);

      await execute('deleteInstance', { instanceId: vm.instanceId }, 'delete-vm-self-off');
      expect(await findGuestProcesses(dataDir)).toEqual([]);
      const audit = await conductor('audit');
      expect(audit.code, `${audit.stdout}${audit.stderr}`).toBe(0);
      await vi.waitFor(
        async () =>
          expect(
            (
              await temporal<Array<{ type?: { name?: string } }>>(
                'workflow',
                'list',
                '--query',
                'ExecutionStatus="Running"'
              )
            )
              .map((w) => w.type?.name)
              .filter((t) => t !== 'reconcile' && t !== 'reconcileHost')
          ).toEqual([]),
        { timeout: 30_000, interval: 1000 }
      );
    } catch (err) {
      console.error(`launcher output (last lines):\n${output.split('\n').slice(-60).join('\n')}`);
      throw err;
    }
  }, 400_000);
});
