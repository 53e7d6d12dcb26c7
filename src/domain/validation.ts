import type { z } from 'zod';

import { InvalidRequest } from './errors';

/**
 * The input field a zod issue is about, as a dotted path: an unknown key names itself, an issue at
 * the top level is "(input)".
 */
export function issueField(issue: z.core.$ZodIssue): string {
  const path = issue.path.map(String);
  if (issue.code === 'unrecognized_keys') path.push(issue.keys.join(', '));
  return path.length ? path.join('.') : '(input)';
}

/** Parses with a zod schema; the first issue becomes an InvalidRequest naming its field path. */
export function parseOrInvalid<S extends z.ZodType>(schema: S, input: unknown): z.output<S> {
  const parsed = schema.safeParse(input);
  if (parsed.success) return parsed.data;
  const issue = parsed.error.issues[0];
  throw new InvalidRequest(issue ? issueField(issue) : '(input)', issue?.message ?? 'invalid');
}
