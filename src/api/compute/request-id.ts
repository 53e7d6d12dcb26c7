import { randomUUID } from 'node:crypto';

/** The request part of an operation's workflow id (as the CLIs make it). */
export const requestIdOf = (): string => randomUUID().slice(0, 8);
