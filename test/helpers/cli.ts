/** Runs one of the project's CLIs as a subprocess (node --import tsx, or node on built code) and collects its output. */
import { spawn } from 'node:child_process';
import path from 'node:path';

export const ROOT = path.resolve(__dirname, '..', '..');

export interface CliRun {
  code: number | null;
  stdout: string;
  stderr: string;
}

/** `env` is laid over this process's; a variable set to undefined is removed. A `.ts` script runs under tsx. */
export function runCli(
  script: string,
  args: readonly string[],
  env: Record<string, string | undefined>
): Promise<CliRun> {
  const loader = script.endsWith('.ts') ? ['--import', 'tsx'] : [];
  return runProcess(process.execPath, [...loader, script, ...args], env);
}

/** Runs any command (a shell pipeline: `/bin/bash -c …`) the same way, from the project root. */
export function runProcess(
  command: string,
  args: readonly string[],
  env: Record<string, string | undefined>
): Promise<CliRun> {
  const childEnv: NodeJS.ProcessEnv = { ...process.env, ...env };
  for (const [k, v] of Object.entries(childEnv)) if (v === undefined) delete childEnv[k];
  return new Promise((resolve, reject) => {
    const child = spawn(command, args, {
      cwd: ROOT,
      env: childEnv,
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
    child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    child.on('error', reject);
    child.on('close', (code) => resolve({ code, stdout, stderr }));
  });
}
