import type { z } from 'zod';

import { InvalidRequest } from './errors';

/** Parses with a zod schema; the first issue becomes an InvalidRequest naming its field path. */
export function parseOrInvalid<S extends z.ZodType>(schema: S, input: unknown): z.output<S> {
  const parsed = schema.safeParse(input);
  if (parsed.success) return parsed.data;
  const issue = parsed.error.issues[0];
  const field = issue && issue.path.length ? issue.path.join('.') : '(input)';
  throw new InvalidRequest(field, issue?.message ?? 'invalid');
}
