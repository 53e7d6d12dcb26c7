/**
 * The payloads of Nova's versioned notifications (nova/notifications/objects/), built from our records:
 * Nova's object names, versions (PAYLOAD_VERSIONS) and fields. What is not ours to know (ports, volumes,
 * keypairs, tags) is empty, as Nova shows it for an instance without them.
 */
import type { InstanceRecord, PowerState } from './instance';
import type { PayloadName, VersionedObject } from './notifications';
import { PAYLOAD_VERSIONS } from './notifications';

export function versioned(name: PayloadName, data: Record<string, unknown>): VersionedObject {
  return {
    'nova_object.name': name,
    'nova_object.namespace': 'nova',
    'nova_object.version': PAYLOAD_VERSIONS[name],
    'nova_object.data': data,
  };
}

/** A flavor as the payloads carry it; sizes from the instance record or the catalogue. */
export interface FlavorFacts {
  name: string;
  vcpus: number;
  memoryMb: number;
  diskGb: number;
  extraSpecs?: Record<string, string>;
}

export function flavorPayload(flavor: FlavorFacts): VersionedObject {
  return versioned('FlavorPayload', {
    // NOTE(nova): flavors are keyed by name here; the API's flavor id is the name.
    flavorid: flavor.name,
    name: flavor.name,
    memory_mb: flavor.memoryMb,
    vcpus: flavor.vcpus,
    root_gb: flavor.diskGb,
    ephemeral_gb: 0,
    swap: 0,
    rxtx_factor: 1.0,
    vcpu_weight: 0,
    disabled: false,
    is_public: true,
    extra_specs: flavor.extraSpecs ?? {},
    projects: null,
    description: null,
  });
}

/** A fault: the failure's type as the exception's name, its message. */
export interface FaultFacts {
  /** The failure type (NoValidHost, ComputeHostUnavailable …); the exception's name in Nova. */
  exception: string;
  message: string;
  /** Where it was raised: the step (event) that failed, or the operation. */
  functionName: string;
  moduleName: string;
}

export function exceptionPayload(fault: FaultFacts): VersionedObject {
  return versioned('ExceptionPayload', {
    exception: fault.exception,
    exception_message: fault.message,
    function_name: fault.functionName,
    module_name: fault.moduleName,
    // NOTE(nova): no Python traceback exists; the Temporal failure (workflow history) holds the stack.
    traceback: '',
  });
}

/** Nova's notification power states (nova/objects/fields.py InstancePowerState). */
const POWER_STATES: Record<PowerState, string> = {
  nostate: 'pending',
  running: 'running',
  shutdown: 'shutdown',
  crashed: 'crashed',
  paused: 'paused',
  suspended: 'suspended',
};

/** What an instance payload is built from: the record as the change left it, and its surroundings. */
export interface InstanceFacts {
  instance: InstanceRecord;
  /** The instance's project and user (the API's tenancy); null when made without the API. */
  owner: { projectId: string; userId: string } | null;
  /** The request (workflow id) of the action the notification belongs to. */
  requestId: string | null;
  flavor: FlavorFacts;
  /** The fault, on an error notification. */
  fault: FaultFacts | null;
  /** When the instance was last launched (its build's end), if it was. */
  launchedAt: string | null;
  /** The image's id (the API's; src/store/ids.ts). */
  imageUuid: string;
  /** The image's properties Nova's ImageMetaPropsPayload carries (only those it sets: hw_architecture). */
  imageProperties: Record<string, unknown>;
}

/** The project and user ids as the API shows them for an owner (Keystone-lite's ids of their names). */
export function ownerIds(owner: { projectId: string; userId: string } | null): {
  tenantId: string | null;
  userId: string | null;
} {
  return owner ? { tenantId: owner.projectId, userId: owner.userId } : { tenantId: null, userId: null };
}

/** InstancePayload's fields (nova/notifications/objects/instance.py), from the record. */
function instanceData(facts: InstanceFacts): Record<string, unknown> {
  const { instance } = facts;
  const { tenantId, userId } = ownerIds(facts.owner);
  const deleted = instance.vmState === 'deleted';
  return {
    uuid: instance.instanceId,
    user_id: userId,
    tenant_id: tenantId,
    reservation_id: null,
    display_name: instance.name,
    display_description: null,
    host_name: instance.name,
    host: instance.host,
    node: instance.host,
    os_type: null,
    architecture: null,
    availability_zone: instance.availabilityZone,
    flavor: flavorPayload(facts.flavor),
    image_uuid: facts.imageUuid,
    key_name: null,
    kernel_id: '',
    ramdisk_id: '',
    created_at: instance.createdAt,
    launched_at: facts.launchedAt,
    terminated_at: deleted ? instance.updatedAt : null,
    deleted_at: deleted ? instance.updatedAt : null,
    updated_at: instance.updatedAt,
    state: instance.vmState,
    power_state: POWER_STATES[instance.powerState],
    task_state: instance.taskState,
    progress: 0,
    // NOTE(nova): no Neutron ports nor Cinder volumes: no addresses, no block devices.
    ip_addresses: [],
    block_devices: [],
    metadata: {},
    locked: false,
    auto_disk_config: 'MANUAL',
    request_id: facts.requestId,
    action_initiator_user: userId,
    action_initiator_project: tenantId,
    locked_reason: null,
    shares: [],
  };
}

/** InstanceActionPayload: the instance and the fault of an error notification. */
export function instanceActionPayload(facts: InstanceFacts): VersionedObject {
  return versioned('InstanceActionPayload', {
    ...instanceData(facts),
    fault: facts.fault && exceptionPayload(facts.fault),
  });
}

/** InstanceCreatePayload: the action payload plus the create request's keypairs, tags and name. */
export function instanceCreatePayload(facts: InstanceFacts): VersionedObject {
  return versioned('InstanceCreatePayload', {
    ...instanceActionPayload(facts)['nova_object.data'],
    keypairs: [],
    tags: [],
    trusted_image_certificates: null,
    instance_name: facts.instance.name,
  });
}

/** InstanceActionRebuildPayload: the action payload plus the rebuild's trusted certificates. */
export function instanceRebuildPayload(facts: InstanceFacts): VersionedObject {
  return versioned('InstanceActionRebuildPayload', {
    ...instanceActionPayload(facts)['nova_object.data'],
    trusted_image_certificates: null,
  });
}

/** InstanceActionResizePrepPayload: the action payload plus the flavor the instance is resized to. */
export function instanceResizePrepPayload(facts: InstanceFacts, newFlavor: FlavorFacts): VersionedObject {
  return versioned('InstanceActionResizePrepPayload', {
    ...instanceActionPayload(facts)['nova_object.data'],
    new_flavor: flavorPayload(newFlavor),
  });
}

/** InstanceActionSnapshotPayload: the action payload plus the id of the image the snapshot makes. */
export function instanceSnapshotPayload(facts: InstanceFacts, snapshotImageId: string | null): VersionedObject {
  return versioned('InstanceActionSnapshotPayload', {
    ...instanceActionPayload(facts)['nova_object.data'],
    snapshot_image_id: snapshotImageId,
  });
}

/** RequestSpecPayload: what the scheduler was asked for one instance. */
export function requestSpecPayload(facts: InstanceFacts, hints: { group: string | null }): VersionedObject {
  const { tenantId, userId } = ownerIds(facts.owner);
  const { instance } = facts;
  return versioned('RequestSpecPayload', {
    availability_zone: instance.availabilityZone,
    flavor: flavorPayload(facts.flavor),
    ignore_hosts: null,
    image: versioned('ImageMetaPayload', {
      id: facts.imageUuid,
      name: instance.image,
      checksum: null,
      container_format: 'bare',
      disk_format: 'qcow2',
      created_at: null,
      updated_at: null,
      direct_url: null,
      min_disk: 0,
      min_ram: 0,
      owner: null,
      properties: versioned('ImageMetaPropsPayload', facts.imageProperties),
      protected: false,
      size: null,
      status: 'active',
      tags: [],
      virtual_size: null,
      visibility: 'public',
    }),
    instance_uuid: instance.instanceId,
    num_instances: 1,
    numa_topology: null,
    pci_requests: versioned('InstancePCIRequestsPayload', { instance_uuid: instance.instanceId, requests: [] }),
    project_id: tenantId,
    scheduler_hints: hints.group ? { group: [hints.group] } : {},
    security_groups: [],
    force_hosts: null,
    force_nodes: null,
    instance_group: null,
    requested_destination: null,
    retry: null,
    user_id: userId,
  });
}

/** ServerGroupPayload. */
export function serverGroupPayload(group: {
  uuid: string;
  name: string;
  policy: string;
  members: readonly string[];
  owner: { projectId: string; userId: string } | null;
}): VersionedObject {
  const { tenantId, userId } = ownerIds(group.owner);
  return versioned('ServerGroupPayload', {
    uuid: group.uuid,
    name: group.name,
    project_id: tenantId,
    user_id: userId,
    policies: [group.policy],
    policy: group.policy,
    rules: {},
    members: [...group.members],
    hosts: null,
  });
}

/** ServiceStatusPayload: a compute host's service record. */
export function serviceStatusPayload(service: {
  uuid: string;
  host: string;
  disabled: boolean;
  disabledReason: string | null;
  forcedDown: boolean;
  availabilityZone: string | null;
  lastSeenUp: string | null;
}): VersionedObject {
  return versioned('ServiceStatusPayload', {
    host: service.host,
    disabled: service.disabled,
    binary: 'nova-compute',
    topic: 'compute',
    disabled_reason: service.disabledReason,
    forced_down: service.forcedDown,
    // NOTE(nova): Nova's service version (its RPC compatibility) has no meaning here; 0.
    version: 0,
    availability_zone: service.availabilityZone,
    uuid: service.uuid,
    last_seen_up: service.lastSeenUp,
    report_count: 0,
  });
}
