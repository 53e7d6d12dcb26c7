import { readFileSync } from 'node:fs';
import path from 'node:path';

import { describe, expect, it } from 'vitest';

import { ACTION_NOTIFICATIONS, COMPUTE_EXCEPTION, STEP_NOTIFICATIONS } from '../../../src/domain/notifications';

const DOC = readFileSync(path.join(__dirname, '..', '..', '..', 'docs', 'notifications.md'), 'utf8');

/** The table's rows: event types (`a.start` / `.end` / `.error` expanded) and the names in backticks of "written when". */
function documented(): Map<string, string> {
  const rows = new Map<string, string>();
  for (const line of DOC.split('\n')) {
    const cells = line.split('|').map((c) => c.trim());
    if (cells.length < 6 || !cells[1]?.startsWith('`')) continue;
    const names = [...cells[1].matchAll(/`([^`]+)`/g)].map((m) => m[1]!);
    const base = names[0]!.replace(/\.[a-z_]+$/, '');
    for (const name of names) rows.set(name.startsWith('.') ? `${base}${name}` : name, cells[4]!);
  }
  return rows;
}

describe('docs/notifications.md', () => {
  it("lists every notification of the code's table, with the actions and steps that write it", () => {
    const rows = documented();
    const fromCode = new Map<string, Set<string>>();
    const add = (type: string, trigger: string) => fromCode.set(type, (fromCode.get(type) ?? new Set()).add(trigger));
    for (const [action, phases] of Object.entries(ACTION_NOTIFICATIONS))
      for (const rules of Object.values(phases)) for (const r of rules) add(r.eventType, action);
    for (const [step, phases] of Object.entries(STEP_NOTIFICATIONS))
      for (const rules of Object.values(phases)) for (const r of rules) add(r.eventType, step);
    const others = [
      COMPUTE_EXCEPTION,
      'server_group.create',
      'server_group.delete',
      'server_group.add_member',
      'service.update',
    ];
    expect([...rows.keys()].sort()).toEqual([...fromCode.keys(), ...others].sort());
    for (const [type, triggers] of fromCode)
      for (const trigger of triggers)
        expect(rows.get(type), `${type} written by ${trigger}`).toContain(`\`${trigger}\``);
  });
});
