/** What the API process works with: the store (read, plus its own tables), the catalogue, Temporal, users. */
import type { Client } from '@temporalio/client';

import type { Catalogue } from '../domain/catalogue';
import type { HostState } from '../domain/host';
import type { ApiRepository } from '../store/api';
import type { InstanceRepository } from '../store/instances';
import type { UsersFile } from './users';

export interface ApiDeps {
  instances: InstanceRepository;
  api: ApiRepository;
  catalogue: Catalogue;
  users: UsersFile;
  /** The API's address as clients reach it, without a trailing slash (catalog and links). */
  publicUrl: string;
  tokenTtlSeconds: number;
  /** The Temporal client every write starts its workflow with (opened lazily by the process). */
  temporal: () => Promise<Client>;
  /** Every compute host with its placement usage and whether its worker is up. */
  hostStates: () => Promise<HostState[]>;
  /** How long a write waits for its workflow to hold the instance before it answers anyway (ms). */
  acceptTimeoutMs?: number;
  now?: () => Date;
}
