/**
 * Domain errors, one class per Nova exception. The class name is the Temporal failure `type`
 * (the SDK's `ensureApplicationFailure` copies `error.name`), so workflows match on the string,
 * never on `instanceof` across the sandbox.
 */

/** Every failure type that can cross the wire, as a const object so the strings are spelled once. */
export const FailureType = {
  InvalidRequest: 'InvalidRequest',
  NoValidHost: 'NoValidHost',
  MaxRetriesExceeded: 'MaxRetriesExceeded',
  InstanceInvalidState: 'InstanceInvalidState',
  InstanceNotFound: 'InstanceNotFound',
  Rescheduled: 'Rescheduled',
  BuildAborted: 'BuildAborted',
  ComputeHostUnavailable: 'ComputeHostUnavailable',
  ComputeServiceInUse: 'ComputeServiceInUse',
  ClaimFailed: 'ClaimFailed',
  MigrationError: 'MigrationError',
  MigrationPreCheckError: 'MigrationPreCheckError',
  LiveMigrationAborted: 'LiveMigrationAborted',
  /** A migration asked to do what its status does not allow (Nova's InvalidMigrationState, 400). */
  InvalidMigrationState: 'InvalidMigrationState',
  HypervisorBusy: 'HypervisorBusy',
  ConcurrentUpdate: 'ConcurrentUpdate',
  /** The late server-group check on the host found the policy broken (reschedulable). */
  GroupAffinityViolation: 'GroupAffinityViolation',
  ServerGroupNotFound: 'ServerGroupNotFound',
  ServerGroupInUse: 'ServerGroupInUse',
  /** An operation failed for a reason no more specific type names (its message says why). */
  OperationFailed: 'OperationFailed',
} as const;
export type FailureType = (typeof FailureType)[keyof typeof FailureType];

/** Base of every domain error: `name` is the failure type and `details` travel with it. */
export abstract class DomainError extends Error {
  abstract override readonly name: FailureType;
  /** Structured context, sent as the ApplicationFailure's details. */
  readonly details: Record<string, unknown>;
  constructor(message: string, details: Record<string, unknown> = {}) {
    super(message);
    this.details = details;
  }
}

/** A request was malformed; `field` names the offending input path. Never retried. */
export class InvalidRequest extends DomainError {
  readonly name = FailureType.InvalidRequest;
  constructor(
    readonly field: string,
    reason: string,
    /** The whole message, when the reason already names its fields (validation.ts). */
    message = `Invalid request: ${field}: ${reason}`
  ) {
    super(message, { field, reason });
  }
}

/** The scheduler found no host that passes every filter (Nova's NoValidHost). */
export class NoValidHost extends DomainError {
  readonly name: FailureType = FailureType.NoValidHost;
  constructor(
    readonly reason: string,
    /** The whole message, when it names what found no host ("for the move of instance …"). */
    message = `No valid host was found. ${reason}`
  ) {
    super(message, { reason });
  }

  /** No host for `task` ("unshelving instance …"): "No valid host was found for <task>." */
  static for(task: string): NoValidHost {
    return new NoValidHost(`no host for ${task}`, `No valid host was found for ${task}.`);
  }
}

/** Every host of a placement attempt list failed (Nova's MaxRetriesExceeded, a NoValidHost). */
export class MaxRetriesExceeded extends NoValidHost {
  override readonly name = FailureType.MaxRetriesExceeded;
  constructor(
    readonly instanceId: string,
    readonly hostsTried: readonly string[],
    /** What the hosts were for, as the message says it (a build's by default; an unshelve's, a resize's). */
    task = `retrying build failures for instance ${instanceId}`
  ) {
    super(`Exceeded maximum number of retries. Exhausted all hosts available for ${task}.`);
    this.message = `Exceeded maximum number of retries. Exhausted all hosts available for ${task}. Hosts tried: ${hostsTried.join(', ')}.`;
    Object.assign(this.details, { instanceId, hostsTried: [...hostsTried] });
  }
}

/** Another operation holds the instance, or its state does not allow this one. */
export class InstanceInvalidState extends DomainError {
  readonly name = FailureType.InstanceInvalidState;
  constructor(
    readonly instanceId: string,
    readonly attribute: 'vmState' | 'taskState' | 'powerState',
    readonly state: string | null,
    readonly method: string,
    /** What follows "Cannot '<method>' instance <id>", when more than the state says why. */
    why = ` while it is in ${attribute} ${state ?? 'None'}`
  ) {
    super(`Cannot '${method}' instance ${instanceId}${why}`, {
      instanceId,
      attribute,
      state,
      method,
    });
  }

  /**
   * The instance changed between the check and the lock (`how`: "moved to h2"), found by the operation
   * `method` ('rebuild', 'evacuate') as it started: "instance <id> <how> while the <task> started".
   */
  static changedMeanwhile(instanceId: string, method: string, how: string, task = method): InstanceInvalidState {
    const error = new InstanceInvalidState(instanceId, 'taskState', method, method);
    error.message = `instance ${instanceId} ${how} while the ${task} started`;
    Object.assign(error.details, { how });
    return error;
  }
}

export class InstanceNotFound extends DomainError {
  readonly name = FailureType.InstanceNotFound;
  constructor(readonly instanceId: string) {
    super(`Instance ${instanceId} could not be found.`, { instanceId });
  }
}

/** A build on one host failed in a way another host may not: move to the next alternate. */
export class Rescheduled extends DomainError {
  readonly name = FailureType.Rescheduled;
  constructor(
    readonly instanceId: string,
    readonly host: string,
    reason: string
  ) {
    super(`Build of instance ${instanceId} was re-scheduled: ${reason}`, { instanceId, host, reason });
  }
}

/** A build failed in a way no other host can fix (bad image, flavor too small, network). Never retried. */
export class BuildAborted extends DomainError {
  readonly name = FailureType.BuildAborted;
  constructor(
    readonly instanceId: string,
    reason: string
  ) {
    super(`Build of instance ${instanceId} aborted: ${reason}`, { instanceId, reason });
  }
}

/** The compute host did not answer (no live worker, or it stopped heartbeating). */
export class ComputeHostUnavailable extends DomainError {
  readonly name = FailureType.ComputeHostUnavailable;
  constructor(
    readonly host: string,
    reason: string
  ) {
    super(`Compute host ${host} is unavailable: ${reason}`, { host, reason });
  }
}

/**
 * An evacuation was refused because the instance's host still has a live compute service (not forced
 * down). NOTE(nova): the API's ComputeServiceInUse (HTTP 400), same message.
 */
export class ComputeServiceInUse extends DomainError {
  readonly name = FailureType.ComputeServiceInUse;
  constructor(readonly host: string) {
    super(
      `Compute service of ${host} is still in use. Evacuate needs the instance's host down: force it down ` +
        `(npm run conductor -- host down ${host}) or stop its compute worker, then evacuate; or, with the host ` +
        `up, move the instance with live-migrate (npm run conductor -- live-migrate <instance>) or migrate.`,
      { host }
    );
  }
}

/** Claiming resources on a host failed: it filled up or disappeared since it was selected. */
export class ClaimFailed extends DomainError {
  readonly name = FailureType.ClaimFailed;
  constructor(
    readonly host: string,
    reason: string
  ) {
    super(`Unable to claim resources on host ${host}: ${reason}`, { host, reason });
  }
}

/**
 * The late server-group check found the host against the group's policy (Nova's GroupAffinityViolation
 * from _validate_instance_group_policy): the attempt is rescheduled, not counted against the host.
 */
export class GroupAffinityViolation extends DomainError {
  readonly name = FailureType.GroupAffinityViolation;
  constructor(
    readonly group: string,
    readonly policy: string,
    readonly host: string,
    reason: string
  ) {
    super(`Server group ${group} (${policy}) would be violated on ${host}: ${reason}`, { group, policy, host });
  }
}

/** No server group of that name (Nova's InstanceGroupNotFound). */
export class ServerGroupNotFound extends DomainError {
  readonly name = FailureType.ServerGroupNotFound;
  constructor(readonly group: string) {
    super(`Server group ${group} could not be found.`, { group });
  }
}

/** A server group that still has members is not deleted (their policy would silently change). */
export class ServerGroupInUse extends DomainError {
  readonly name = FailureType.ServerGroupInUse;
  constructor(
    readonly group: string,
    readonly members: readonly string[]
  ) {
    super(`Server group ${group} still has ${members.length} member(s): delete them first (${members.join(', ')}).`, {
      group,
      members: [...members],
    });
  }
}

export class MigrationError extends DomainError {
  readonly name = FailureType.MigrationError;
  constructor(
    reason: string,
    details: Record<string, unknown> = {},
    /** The whole message, when it says more than "Migration error: <reason>" ("the resize was cancelled"). */
    message = `Migration error: ${reason}`
  ) {
    super(message, details);
  }

  /** A migration error whose message is `message` as it is, without the "Migration error: " prefix. */
  static saying(message: string): MigrationError {
    return new MigrationError(message, {}, message);
  }
}

/**
 * A migration asked to do what its status does not allow (Nova's InvalidMigrationState, 400): an
 * abort or force-complete of a live migration that is not copying.
 */
export class InvalidMigrationState extends DomainError {
  readonly name = FailureType.InvalidMigrationState;
  constructor(
    readonly migrationId: string,
    readonly instanceId: string,
    readonly status: string,
    readonly method: string
  ) {
    super(
      `Migration ${migrationId} state of instance ${instanceId} is ${status}. Cannot ${method} while the migration is in this state.`,
      { migrationId, instanceId, status, method }
    );
  }
}

/** A live-migration pre-check failed on a destination or the source (Nova's MigrationPreCheckError). */
export class MigrationPreCheckError extends DomainError {
  readonly name = FailureType.MigrationPreCheckError;
  constructor(reason: string, details: Record<string, unknown> = {}) {
    super(`Migration pre-check error: ${reason}`, { reason, ...details });
  }
}

/** A live migration was aborted: by the operator, or past its completion timeout. */
export class LiveMigrationAborted extends DomainError {
  readonly name = FailureType.LiveMigrationAborted;
  constructor(instanceId: string, reason: string) {
    super(`Live migration of instance ${instanceId} aborted: ${reason}`, { instanceId, reason });
  }
}

/** A transient hypervisor fault on one host, retried on that same host by the activity's policy. */
export class HypervisorBusy extends DomainError {
  readonly name = FailureType.HypervisorBusy;
  constructor(
    readonly host: string,
    reason: string
  ) {
    super(`Hypervisor on ${host} is busy: ${reason}`, { host, reason });
  }
}

/** A compare-and-swap lost a race; the caller retries (placement generation conflicts). */
export class ConcurrentUpdate extends DomainError {
  readonly name = FailureType.ConcurrentUpdate;
  constructor(what: string) {
    super(`Concurrent update of ${what}`, { what });
  }
}

/** A build naming a server group that does not exist: InvalidRequest saying how to create it, and which exist. */
export function unknownServerGroup(name: string, existing: readonly string[]): InvalidRequest {
  const known = existing.length ? `existing: ${existing.join(', ')}` : 'none exists yet';
  return new InvalidRequest(
    'schedulerHints.group',
    `unknown server group '${name}' (${known}; create it first: npm run conductor -- server-group create ${name} --policy anti-affinity)`
  );
}
