/** An instance row as the domain's record (one mapping, for the repository and the notifications). */
import type { Selectable } from 'kysely';

import type { InstanceRecord, PowerState, TaskState, VmState } from '../../domain/instance';
import { prepared } from '../prepared';
import type { InstancesTable } from '../schema';

/** One instance's row by id (the repository's find, the notifications' facts). */
export const selectInstanceRow = prepared((db, p: { instanceId: string }) =>
  db.selectFrom('instances').selectAll().where('instance_id', '=', p.instanceId)
);

export function instanceFromRow(row: Selectable<InstancesTable>): InstanceRecord {
  return {
    instanceId: row.instance_id,
    name: row.name,
    vmState: row.vm_state as VmState,
    taskState: row.task_state as TaskState | null,
    taskOwner: row.task_owner,
    powerState: row.power_state as PowerState,
    host: row.host,
    availabilityZone: row.availability_zone,
    flavor: row.flavor,
    image: row.image,
    vcpus: row.vcpus,
    memoryMb: row.memory_mb,
    diskGb: row.disk_gb,
    serverGroup: row.server_group,
    createdAt: row.created_at,
    updatedAt: row.updated_at,
  };
}
