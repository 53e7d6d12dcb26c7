/** The store layer: open (SQLite or PostgreSQL), migrate, and the two repositories. */
export { migrateToLatest, openStore, transaction, type Store, type StoreDialect, type StoreOptions } from './db';
export { createInstanceRepository, type InstanceRepository } from './instances';
export { createPlacementRepository, type PlacementRepository } from './placement';
export type { Database } from './schema';
