/** The `serverGroup` workflow's input. Built lazily: see index.ts. */
import { z } from 'zod';

import { ServerGroupNameSchema } from './common';

/** The `serverGroup` workflow's input: one action on the server groups (Nova's os-server-groups API). */
export const ServerGroupInputSchema = z.lazy(() =>
  z.discriminatedUnion('action', [
    z
      .object({
        action: z.literal('create'),
        name: ServerGroupNameSchema,
        policy: z.enum(['affinity', 'anti-affinity'], { message: "policy is 'affinity' or 'anti-affinity'" }),
      })
      .strict(),
    z.object({ action: z.literal('list') }).strict(),
    z.object({ action: z.literal('show'), name: ServerGroupNameSchema }).strict(),
    z.object({ action: z.literal('delete'), name: ServerGroupNameSchema }).strict(),
  ])
);
export type ServerGroupInput = z.input<typeof ServerGroupInputSchema>;
