/**
 * One window of a V8 CPU profile (BENCH_CPU_PROF, bench/e2e/stack.ts), summarised: the thread's busy time
 * in the window, its self time by where the code comes from (the SDK, the store's libraries, our own
 * modules …) and the frames of ours with the most time under them. The window is a pair of the bench's
 * `windowsMonotonicUs` (its JSON line), on the profile's own clock:
 *
 *   npx tsx bench/e2e/profile-window.ts test-artifacts/bench-profiles/CPU.….cpuprofile <startUs> <endUs>
 *
 * Sampled time is wall time on a busy thread: on a loaded machine it includes waits for a core, so
 * compare shares within one profile, and processes by their CPU time (the bench's own table).
 */
import { readFileSync } from 'node:fs';

interface ProfileNode {
  id: number;
  callFrame: { functionName: string; url: string; lineNumber: number };
  children?: number[];
}
interface Profile {
  nodes: ProfileNode[];
  startTime: number;
  samples: number[];
  timeDeltas: number[];
}

function origin(node: ProfileNode): string {
  const { functionName, url } = node.callFrame;
  if (functionName === '(garbage collector)') return 'gc';
  if (functionName === '(program)') return 'program';
  if (!url) return 'native';
  if (url.includes('workflow-bundle')) return 'workflow bundle';
  const dep = /node_modules\/((?:@[^/]+\/)?[^/]+)/.exec(url)?.[1];
  if (dep) return dep.startsWith('@temporalio') ? 'temporal sdk' : dep;
  if (url.startsWith('node:')) return 'node core';
  const ours = /\/(src|bench)\/(.+)$/.exec(url);
  return ours ? `ours: ${ours[1]}/${ours[2]!.split('/').slice(0, 2).join('/')}` : url;
}

function main(): void {
  const [file, start, end] = process.argv.slice(2);
  if (!file || !start || !end) throw new Error('usage: profile-window.ts <profile> <startUs> <endUs>');
  const profile = JSON.parse(readFileSync(file, 'utf8')) as Profile;
  const byId = new Map(profile.nodes.map((n) => [n.id, n]));
  const parent = new Map<number, number>();
  for (const n of profile.nodes) for (const c of n.children ?? []) parent.set(c, n.id);
  const self = new Map<string, number>();
  const under = new Map<string, number>();
  let busy = 0;
  let t = profile.startTime;
  profile.samples.forEach((id, i) => {
    t += profile.timeDeltas[i]!;
    const node = byId.get(id)!;
    if (t < Number(start) || t > Number(end) || node.callFrame.functionName === '(idle)') return;
    const dt = profile.timeDeltas[i + 1] ?? profile.timeDeltas[i]!;
    busy += dt;
    self.set(origin(node), (self.get(origin(node)) ?? 0) + dt);
    const seen = new Set<string>();
    for (let at: number | undefined = id; at !== undefined; at = parent.get(at)) {
      const { functionName, url, lineNumber } = byId.get(at)!.callFrame;
      const ours = /\/((?:src|bench)\/.+)$/.exec(url)?.[1];
      const name = ours ? `${functionName || '(anonymous)'} ${ours}:${lineNumber + 1}` : undefined;
      if (name && !seen.has(name)) {
        seen.add(name);
        under.set(name, (under.get(name) ?? 0) + dt);
      }
    }
  });
  const ms = (us: number) => `${(us / 1000).toFixed(0).padStart(6)} ms ${((100 * us) / busy).toFixed(1).padStart(5)}%`;
  const top = (m: Map<string, number>, n: number) => [...m].sort((a, b) => b[1] - a[1]).slice(0, n);
  console.log(`busy ${(busy / 1000).toFixed(0)} ms in the window`);
  console.log('self time by origin:');
  for (const [k, v] of top(self, 15)) console.log(`${ms(v)}  ${k}`);
  console.log('ours, with everything under them:');
  for (const [k, v] of top(under, 20)) console.log(`${ms(v)}  ${k}`);
}

main();
