/**
 * The lint rules that keep the layers pointing one way (domain ← scheduler/shared ← store/compute ←
 * activities ← workflows ← workers/cli) and the module graph free of cycles. Probe files are written
 * into src/ for the length of one lint run, so the rules are checked as `npx eslint .` applies them.
 */
import { mkdirSync, rmSync, writeFileSync } from 'node:fs';
import path from 'node:path';

import { ESLint } from 'eslint';
import { afterAll, describe, expect, it } from 'vitest';

const ROOT = path.resolve(__dirname, '..', '..', '..');
const PROBE = path.join(ROOT, 'src', 'domain', `__lint_probe_${process.pid}`);

afterAll(() => rmSync(PROBE, { recursive: true, force: true }));

async function lint(files: Record<string, string>): Promise<string[]> {
  rmSync(PROBE, { recursive: true, force: true });
  mkdirSync(PROBE, { recursive: true });
  for (const [name, text] of Object.entries(files)) writeFileSync(path.join(PROBE, name), text);
  const eslint = new ESLint({ cwd: ROOT });
  const results = await eslint.lintFiles(Object.keys(files).map((name) => path.join(PROBE, name)));
  return results.flatMap((r) =>
    r.messages.map((m) => `${path.basename(r.filePath)}: ${m.ruleId ?? 'fatal'}: ${m.message}`)
  );
}

describe('layer and cycle lint rules', () => {
  it('pass on files that import downwards only', async () => {
    const messages = await lint({
      'ok.ts': "import { VmState } from '../instance';\n\nexport const ACTIVE = VmState.Active;\n",
    });
    expect(messages).toEqual([]);
  });

  it('fail on an import cycle', async () => {
    const messages = await lint({
      'a.ts': "import { B } from './b';\n\nexport const A = 1 + B;\n",
      'b.ts': "import { A } from './a';\n\nexport const B = 2;\nexport const C = A;\n",
    });
    expect(messages).toEqual([
      'a.ts: import-x/no-cycle: Dependency cycle detected',
      'b.ts: import-x/no-cycle: Dependency cycle detected',
    ]);
  });

  it('fail on a domain file importing an upper layer', async () => {
    const messages = await lint({
      'wrong.ts':
        "import { CONDUCTOR_TASK_QUEUE } from '../../shared/task-queues';\n\nexport const Q = CONDUCTOR_TASK_QUEUE;\n",
    });
    expect(messages).toHaveLength(1);
    expect(messages[0]).toContain('import-x/no-restricted-paths');
    expect(messages[0]).toContain('src/domain sits below src/shared');
  });
});
