/**
 * A server as Nova's API shows it for the requested microversion (nova/api/openstack/compute/views/
 * servers.py): status from (vm_state, task_state) by Nova's state map, power_state as Nova's integers,
 * hostId as sha224(project + host), admin-only attributes for admins only, and the keys each
 * microversion adds (2.3, 2.9, 2.16, 2.19, 2.26, 2.47).
 */
import type { FastifyRequest } from 'fastify';

import type { Catalogue } from '../../domain/catalogue';
import type { InstanceRecord, PowerState, TaskState, VmState } from '../../domain/instance';
import type { InstanceAttributes, Owner } from '../../store/api';
import type { InstanceAction, InstanceFault } from '../../store/instances';
import type { ApiDeps } from '../deps';
import { hostIdOf, imageId } from '../ids';
import { atLeast } from '../microversion';
import { isAdmin } from '../tokens';
import { caller, isoZ, links } from './common';
import { ownerOrAdmin } from './tenancy';

/** nova/api/openstack/common.py _STATE_MAP: (vm_state, task_state) → status. */
const STATE_MAP: Record<VmState, { default: string } & Partial<Record<TaskState, string>>> = {
  active: {
    default: 'ACTIVE',
    rebuilding: 'REBUILD',
    rebuild_block_device_mapping: 'REBUILD',
    rebuild_spawning: 'REBUILD',
    migrating: 'MIGRATING',
    rebooting: 'REBOOT',
    reboot_started: 'REBOOT',
    rebooting_hard: 'HARD_REBOOT',
    reboot_started_hard: 'HARD_REBOOT',
    resize_prep: 'RESIZE',
    resize_migrating: 'RESIZE',
    resize_migrated: 'RESIZE',
    resize_finish: 'RESIZE',
  },
  building: { default: 'BUILD' },
  stopped: {
    default: 'SHUTOFF',
    resize_prep: 'RESIZE',
    resize_migrating: 'RESIZE',
    resize_migrated: 'RESIZE',
    resize_finish: 'RESIZE',
    rebuilding: 'REBUILD',
    rebuild_block_device_mapping: 'REBUILD',
    rebuild_spawning: 'REBUILD',
    rebooting_hard: 'HARD_REBOOT',
    reboot_started_hard: 'HARD_REBOOT',
  },
  paused: {
    default: 'PAUSED',
    rebooting_hard: 'HARD_REBOOT',
    reboot_started_hard: 'HARD_REBOOT',
    migrating: 'MIGRATING',
  },
  suspended: { default: 'SUSPENDED' },
  shelved: { default: 'SHELVED' },
  shelved_offloaded: { default: 'SHELVED_OFFLOADED' },
  resized: { default: 'VERIFY_RESIZE', resize_reverting: 'REVERT_RESIZE' },
  error: {
    default: 'ERROR',
    rebuilding: 'REBUILD',
    rebuild_block_device_mapping: 'REBUILD',
    rebuild_spawning: 'REBUILD',
    rebooting_hard: 'HARD_REBOOT',
    reboot_started_hard: 'HARD_REBOOT',
  },
  deleted: { default: 'DELETED' },
};

export function statusOf(vmState: VmState, taskState: TaskState | null): string {
  const row = STATE_MAP[vmState];
  return (taskState !== null ? row[taskState] : undefined) ?? row.default;
}

/** The vm states a status filter names (Nova's common.task_and_vm_state_from_status, simplified). */
export function vmStatesOf(status: string): VmState[] {
  const wanted = status.toUpperCase();
  return (Object.keys(STATE_MAP) as VmState[]).filter((vm) => Object.values(STATE_MAP[vm]).some((s) => s === wanted));
}

/** nova/compute/power_state.py */
export const POWER_STATE: Record<PowerState, number> = {
  nostate: 0,
  running: 1,
  paused: 3,
  shutdown: 4,
  crashed: 6,
  suspended: 7,
};

/** The progress Nova shows (0 … 100) for the statuses that have one. */
const WITH_PROGRESS = new Set(['ACTIVE', 'BUILD', 'REBUILD', 'RESIZE', 'VERIFY_RESIZE', 'MIGRATING']);

export interface ServerExtras {
  owner: Owner | undefined;
  /** The instance's actions (for launched_at), when read. */
  actions?: InstanceAction[];
  faults?: InstanceFault[];
  /** The server's flavor when it was made through the API (its name and extra specs; deleted ones too). */
  flavor?: { name: string; extraSpecs: Record<string, string> };
  /** What the client set and Nova echoes (access IPs, disk config). */
  attributes?: InstanceAttributes;
  /** The server's metadata ({} when absent). */
  metadata?: Record<string, string>;
  /** Whether the instance's host is up (host_status at 2.16). */
  hostUp?: boolean;
}

export function serverSummary(deps: ApiDeps, r: InstanceRecord) {
  return { id: r.instanceId, links: links(deps, `servers/${r.instanceId}`), name: r.name };
}

export function serverView(
  deps: ApiDeps,
  req: FastifyRequest,
  r: InstanceRecord,
  extras: ServerExtras,
  catalogue: Catalogue = deps.catalogue
): Record<string, unknown> {
  const v = req.apiVersion;
  const admin = isAdmin(caller(req));
  const status = statusOf(r.vmState, r.taskState);
  const owner = ownerOrAdmin(extras.owner);
  const projectId = owner.projectId;
  const created = extras.actions?.find((a) => a.action === 'create');
  const launchedAt = created?.finishedAt && created.result === 'Success' ? created.finishedAt : null;
  const flavor = extras.flavor ?? catalogue.flavors.find((f) => f.name === r.flavor);
  const image = catalogue.images.find((i) => i.name === r.image);
  const imageRef = image ? imageId(image.name) : r.image;
  const body: Record<string, unknown> = {
    id: r.instanceId,
    name: r.name,
    status,
    tenant_id: projectId,
    user_id: owner.userId,
    metadata: extras.metadata ?? {},
    hostId: hostIdOf(r.host, projectId),
    image: { id: imageRef, links: [{ rel: 'bookmark', href: `${deps.publicUrl}/compute/images/${imageRef}` }] },
    flavor: atLeast(v, '2.47')
      ? {
          vcpus: r.vcpus,
          ram: r.memoryMb,
          disk: r.diskGb,
          ephemeral: 0,
          swap: 0,
          original_name: flavor?.name ?? r.flavor,
          extra_specs: flavor?.extraSpecs ?? {},
        }
      : { id: r.flavor, links: [{ rel: 'bookmark', href: `${deps.publicUrl}/compute/flavors/${r.flavor}` }] },
    created: isoZ(r.createdAt),
    updated: isoZ(r.updatedAt),
    addresses: {},
    accessIPv4: extras.attributes?.accessIPv4 ?? '',
    accessIPv6: extras.attributes?.accessIPv6 ?? '',
    links: links(deps, `servers/${r.instanceId}`),
    'OS-DCF:diskConfig': extras.attributes?.diskConfig ?? 'MANUAL',
    'OS-EXT-AZ:availability_zone': r.availabilityZone ?? '',
    config_drive: '',
    key_name: null,
    'OS-SRV-USG:launched_at': launchedAt ? launchedAt.replace(/Z$/, '').replace(/(\.\d{3})\d*$/, '$1000') : null,
    'OS-SRV-USG:terminated_at': null,
    security_groups: [{ name: 'default' }],
    'os-extended-volumes:volumes_attached': [],
    'OS-EXT-STS:task_state': r.taskState,
    'OS-EXT-STS:vm_state': r.vmState,
    'OS-EXT-STS:power_state': POWER_STATE[r.powerState],
  };
  // Nova's instance.progress is 0 unless a driver reports it (ours do not through the record).
  if (WITH_PROGRESS.has(status)) body.progress = 0;
  if (admin) {
    body['OS-EXT-SRV-ATTR:host'] = r.host;
    body['OS-EXT-SRV-ATTR:hypervisor_hostname'] = r.host;
    body['OS-EXT-SRV-ATTR:instance_name'] = `instance-${r.instanceId.slice(0, 8)}`;
    if (atLeast(v, '2.3')) {
      body['OS-EXT-SRV-ATTR:reservation_id'] = `r-${r.instanceId.slice(0, 8)}`;
      body['OS-EXT-SRV-ATTR:launch_index'] = 0;
      body['OS-EXT-SRV-ATTR:hostname'] = r.name.toLowerCase().replace(/[^a-z0-9-]+/g, '-');
      body['OS-EXT-SRV-ATTR:kernel_id'] = '';
      body['OS-EXT-SRV-ATTR:ramdisk_id'] = '';
      body['OS-EXT-SRV-ATTR:root_device_name'] = '/dev/vda';
      // NOTE(nova): user_data is never stored here (it goes to the guest only): always null.
      body['OS-EXT-SRV-ATTR:user_data'] = null;
    }
  }
  if (atLeast(v, '2.9')) body.locked = false;
  if (atLeast(v, '2.16') && admin) body.host_status = r.host === null ? '' : extras.hostUp === false ? 'DOWN' : 'UP';
  if (atLeast(v, '2.19')) body.description = null;
  if (atLeast(v, '2.26')) body.tags = [];
  const fault = extras.faults?.[extras.faults.length - 1];
  if (fault && (r.vmState === 'error' || r.vmState === 'deleted'))
    body.fault = {
      code: fault.code,
      created: isoZ(fault.createdAt),
      message: fault.message,
      ...(admin || fault.code !== 500 ? { details: fault.details ?? '' } : {}),
    };
  return body;
}

/** The keys of Nova's rebuild response (its basic server view, without the extended attributes). */
const REBUILD_KEYS = [
  'id',
  'name',
  'status',
  'tenant_id',
  'user_id',
  'metadata',
  'hostId',
  'image',
  'flavor',
  'created',
  'updated',
  'addresses',
  'accessIPv4',
  'accessIPv6',
  'links',
  'OS-DCF:diskConfig',
  'progress',
  'locked',
  'description',
  'tags',
] as const;

/** Nova's rebuild response from the full server body: the basic view, with the password. */
export function rebuildView(full: Record<string, unknown>, adminPass: string): Record<string, unknown> {
  const body: Record<string, unknown> = {};
  for (const key of REBUILD_KEYS) if (key in full) body[key] = full[key];
  if (!('progress' in body)) body.progress = 0;
  return { ...body, adminPass };
}
