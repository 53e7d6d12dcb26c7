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

/** One problem of an input, in words: the field it is about and what is wrong with it. */
export interface InputProblem {
  field: string;
  reason: string;
}

/** How many problems a message lists before it says how many more there are. */
const LISTED = 5;

function valueAt(input: unknown, path: readonly PropertyKey[]): unknown {
  let value = input;
  for (const key of path) {
    if (value === null || typeof value !== 'object') return undefined;
    value = (value as Record<PropertyKey, unknown>)[key];
  }
  return value;
}

/**
 * Every problem zod found, in words a newcomer can act on: an unknown key named as one ("unknown key
 * 'flavour'", listed first: a misspelt key usually also leaves its right spelling missing), a missing
 * field said to be missing (not its format's message), anything else with zod's (or the schema's) message.
 */
export function inputProblems(issues: readonly z.core.$ZodIssue[], input: unknown): InputProblem[] {
  const unknown: InputProblem[] = [];
  const other: InputProblem[] = [];
  for (const issue of issues) {
    const path = issue.path.map(String);
    if (issue.code === 'unrecognized_keys') {
      for (const key of issue.keys) {
        const field = [...path, key].join('.');
        unknown.push({ field, reason: `${field}: unknown key '${field}'` });
      }
      continue;
    }
    const field = path.length ? path.join('.') : '(input)';
    const missing = issue.code === 'invalid_type' && path.length > 0 && valueAt(input, issue.path) === undefined;
    other.push({ field, reason: missing ? `${field}: missing (required)` : `${field}: ${issue.message}` });
  }
  return [...unknown, ...other];
}

/** The InvalidRequest for these problems: the first one's field, every problem in its message (up to LISTED). */
export function invalidRequestOf(problems: readonly InputProblem[]): InvalidRequest {
  const first = problems[0] ?? { field: '(input)', reason: '(input): invalid' };
  const listed = problems.slice(0, LISTED).map((p) => p.reason);
  const more = problems.length > LISTED ? `; and ${problems.length - LISTED} more` : '';
  return new InvalidRequest(first.field, listed.join('; ') + more, `Invalid request: ${listed.join('; ')}${more}`);
}

/** Parses with a zod schema; its problems become an InvalidRequest naming each field (see inputProblems). */
export function parseOrInvalid<S extends z.ZodType>(schema: S, input: unknown): z.output<S> {
  const parsed = schema.safeParse(input);
  if (parsed.success) return parsed.data;
  throw invalidRequestOf(inputProblems(parsed.error.issues, input));
}
