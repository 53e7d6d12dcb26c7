/**
 * Zod schemas of every workflow's input. Workflows parse their input first thing, so bad input fails
 * as InvalidRequest naming the field before anything is claimed or written; clients parse the same
 * schemas before starting a workflow.
 *
 * Each workflow's input schema is built the first time it parses (`z.lazy`): workflow code evaluates
 * this module again for every workflow run, which would otherwise build every workflow's schema to
 * parse one input.
 */
export * from './common';
export * from './build';
export * from './server-group';
export * from './power';
export * from './rebuild';
export * from './live-migration';
export * from './delete';
export * from './hosts';
export * from './resize';
export * from './reconcile';
