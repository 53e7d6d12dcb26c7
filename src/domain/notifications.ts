/**
 * Nova's versioned notifications: which one is emitted for which change (one table, by instance action
 * and by step), and their payloads as Nova's notification objects (nova/notifications/objects/), with
 * Nova's names, versions and fields. The store writes them in the transaction of the change they report
 * (src/store/notifications.ts); docs/notifications.md lists them. A payload change bumps its version in
 * PAYLOAD_VERSIONS, as Nova's objects do.
 */

export type NotificationPriority = 'INFO' | 'ERROR';

/** Which Nova service emits it: the publisher id is `nova-<source>:<host>`. */
export type NotificationSource = 'api' | 'conductor' | 'scheduler' | 'compute';

/** A Nova versioned object, as it goes on the wire. */
export interface VersionedObject {
  'nova_object.name': string;
  'nova_object.namespace': 'nova';
  'nova_object.version': string;
  'nova_object.data': Record<string, unknown>;
}

/** One notification as the outbox keeps it (the relay adds the transport's envelope). */
export interface VersionedNotification {
  /** Consumers drop duplicates on it (delivery is at least once). */
  messageId: string;
  eventType: string;
  priority: NotificationPriority;
  publisherId: string;
  /** ISO-8601, when the change was written. */
  timestamp: string;
  /** The instance it reports on, if any (delivery is in order per instance). */
  instanceId: string | null;
  payload: VersionedObject;
}

/** The versions of the payloads we emit: Nova 34 (2025.2)'s, as in its notification samples. */
export const PAYLOAD_VERSIONS = {
  InstanceActionPayload: '1.9',
  InstanceCreatePayload: '1.13',
  InstanceActionRebuildPayload: '1.10',
  InstanceActionResizePrepPayload: '1.4',
  InstanceActionSnapshotPayload: '1.10',
  ExceptionPayload: '1.1',
  FlavorPayload: '1.4',
  RequestSpecPayload: '1.1',
  ImageMetaPayload: '1.0',
  ImageMetaPropsPayload: '1.20',
  InstancePCIRequestsPayload: '1.0',
  ServerGroupPayload: '1.1',
  ServiceStatusPayload: '1.1',
} as const;
export type PayloadName = keyof typeof PAYLOAD_VERSIONS;

/** The payload of an instance notification: which Nova object. */
export type InstancePayloadKind = 'action' | 'create' | 'rebuild' | 'resizePrep' | 'requestSpec' | 'snapshot';

export interface NotificationRule {
  eventType: string;
  source: NotificationSource;
  payload: InstancePayloadKind;
  /** A step's rule: only when the step runs in this action (a step several actions share). */
  inAction?: string;
}

/** A phase of an action or of a step: it started, it ended well, it ended in error. */
export type Phase = 'start' | 'end' | 'error';
export type PhaseRules = Partial<Record<Phase, readonly NotificationRule[]>>;

const rule = (eventType: string, source: NotificationSource, payload: InstancePayloadKind = 'action') => ({
  eventType,
  source,
  payload,
});
/** `<name>.start` and `<name>.end` (and `.error` when `withError`), from one source. */
function startEnd(
  name: string,
  source: NotificationSource,
  payload: InstancePayloadKind = 'action',
  withError = false
) {
  const rules: PhaseRules = {
    start: [rule(`${name}.start`, source, payload)],
    end: [rule(`${name}.end`, source, payload)],
  };
  return withError ? { ...rules, error: [rule(`${name}.error`, source, payload)] } : rules;
}

/**
 * By instance action (src/domain/transitions.ts's action names; the build's `create`): what its start,
 * its success and its failure emit. The operation frame writes them (the action's start with the
 * operation lock, its end with the operation's last write), never a workflow.
 *
 * NOTE(nova): Nova's compute manager emits these when its own method starts and ends; here the action
 * (the whole operation) is what starts and ends, so a stop's `instance.power_off.start` is written with
 * the operation lock (task state powering-off), as Nova's is, and its `.end` with the instance stopped.
 */
export const ACTION_NOTIFICATIONS: Readonly<Record<string, PhaseRules>> = {
  // NOTE(nova): the build's compute emits instance.create.* in Nova; here the conductor writes them, with
  // the instance's creation (start) and with its last write (end, error), and names itself the publisher.
  create: startEnd('instance.create', 'conductor', 'create', true),
  stop: startEnd('instance.power_off', 'compute'),
  start: startEnd('instance.power_on', 'compute'),
  reboot: startEnd('instance.reboot', 'compute', 'action', true),
  pause: startEnd('instance.pause', 'compute'),
  unpause: startEnd('instance.unpause', 'compute'),
  suspend: startEnd('instance.suspend', 'compute'),
  resume: startEnd('instance.resume', 'compute'),
  rebuild: startEnd('instance.rebuild', 'compute', 'rebuild', true),
  // NOTE(nova): the API emits instance.evacuate; the destination's rebuild_instance then emits the rebuild's.
  evacuate: {
    start: [rule('instance.evacuate', 'api'), rule('instance.rebuild.start', 'compute', 'rebuild')],
    end: [rule('instance.rebuild.end', 'compute', 'rebuild')],
    error: [rule('instance.rebuild.error', 'compute', 'rebuild')],
  },
  confirmResize: startEnd('instance.resize_confirm', 'compute'),
  revertResize: startEnd('instance.resize_revert', 'compute'),
  delete: startEnd('instance.delete', 'compute'),
  shelve: startEnd('instance.shelve', 'compute'),
  shelveOffload: startEnd('instance.shelve_offload', 'compute'),
  // NOTE(nova): an unshelve of a shelved (not offloaded) instance is Nova's start_instance, which emits
  // instance.power_on.start and .end; here it is the `unshelve` action, with instance.unshelve.start and .end.
  unshelve: startEnd('instance.unshelve', 'compute'),
};

/**
 * By step (the instance action event's name): what its start, success and failure emit. Every failed
 * `compute_*` step also emits `compute.exception` (COMPUTE_EXCEPTION), as Nova's wrap_exception does.
 * A step's start is written when its event is first recorded (with the step's own start time).
 */
export const STEP_NOTIFICATIONS: Readonly<Record<string, PhaseRules>> = {
  // NOTE(nova): the scheduler emits these in Nova; the seed moves them into the conductor.
  conductor_schedule_and_build_instances: startEnd('scheduler.select_destinations', 'scheduler', 'requestSpec'),
  scheduler_select_destinations: startEnd('scheduler.select_destinations', 'scheduler', 'requestSpec'),
  conductor_migrate_server: startEnd('scheduler.select_destinations', 'scheduler', 'requestSpec'),
  conductor_live_migrate_instance: startEnd('scheduler.select_destinations', 'scheduler', 'requestSpec'),
  conductor_schedule_instances: startEnd('scheduler.select_destinations', 'scheduler', 'requestSpec'),
  // NOTE(nova): snapshot_instance emits these around the driver's snapshot with the task state
  // image_snapshot, the end with none; here both go with the copy's step (task state image_uploading).
  // A shelve's own copy (the same step in the `shelve` action) emits none, as Nova's shelve_instance.
  compute_snapshot_instance: {
    start: [{ ...rule('instance.snapshot.start', 'compute', 'snapshot'), inAction: 'createImage' }],
    end: [{ ...rule('instance.snapshot.end', 'compute', 'snapshot'), inAction: 'createImage' }],
  },
  compute_prep_resize: startEnd('instance.resize_prep', 'compute', 'resizePrep'),
  compute_resize_instance: startEnd('instance.resize', 'compute', 'action', true),
  compute_finish_resize: startEnd('instance.resize_finish', 'compute'),
  compute_pre_live_migration: startEnd('instance.live_migration_pre', 'compute'),
  compute_post_live_migration: startEnd('instance.live_migration_post', 'compute'),
  compute_rollback_live_migration: startEnd('instance.live_migration_rollback', 'compute'),
  compute_live_migration_abort: startEnd('instance.live_migration_abort', 'compute'),
  compute_live_migration_force_complete: startEnd('instance.live_migration_force_complete', 'compute'),
};

/** Emitted (ERROR, ExceptionPayload) by every compute step that failed. */
export const COMPUTE_EXCEPTION = 'compute.exception';
export const isComputeStep = (event: string): boolean => event.startsWith('compute_');

/** The notifications of a phase of an action. */
export const actionRules = (action: string, phase: Phase): readonly NotificationRule[] =>
  ACTION_NOTIFICATIONS[action]?.[phase] ?? [];

/** The notifications of a phase of a step. */
export const stepRules = (event: string, phase: Phase): readonly NotificationRule[] =>
  STEP_NOTIFICATIONS[event]?.[phase] ?? [];
