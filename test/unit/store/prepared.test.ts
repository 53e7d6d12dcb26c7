import { sql } from 'kysely';
import { describe, expect, it } from 'vitest';

import { transaction } from '../../../src/store/db';
import { createInstanceRepository } from '../../../src/store/instances';
import { prepared } from '../../../src/store/prepared';
import { BACKENDS, useFreshStore } from './backends';
import { newInstance } from './fixtures';

describe.each(BACKENDS)('prepared queries on $name', (backend) => {
  const fx = useFreshStore(backend);

  const byHostAndState = prepared((db, p: { host: string; vmState: string }) =>
    db
      .selectFrom('instances')
      .select('instance_id')
      .where('host', '=', p.host)
      .where('vm_state', '=', p.vmState)
      .where('power_state', '=', 'running')
      .orderBy('instance_id')
  );

  it('fills each call with its own values, the shape constants kept, the same rows as the query built anew', async () => {
    const repo = createInstanceRepository(fx.store);
    await repo.create(newInstance('i-1', { host: 'h1', vmState: 'active', powerState: 'running' }));
    await repo.create(newInstance('i-2', { host: 'h2', vmState: 'active', powerState: 'running' }));
    await repo.create(newInstance('i-3', { host: 'h1', vmState: 'stopped', powerState: 'shutdown' }));
    await repo.create(newInstance('i-4', { host: 'h1', vmState: 'active', powerState: 'shutdown' }));
    const ids = async (host: string, vmState: string) =>
      (await byHostAndState(fx.store.db, { host, vmState })).rows.map((r) => r.instance_id);
    expect(await ids('h1', 'active')).toEqual(['i-1']);
    expect(await ids('h2', 'active')).toEqual(['i-2']);
    expect(await ids('h1', 'stopped')).toEqual([]);
    const built = await fx.store.db
      .selectFrom('instances')
      .select('instance_id')
      .where('host', '=', 'h2')
      .where('vm_state', '=', 'active')
      .where('power_state', '=', 'running')
      .execute();
    expect(built.map((r) => r.instance_id)).toEqual(await ids('h2', 'active'));
  });

  it("runs in the caller's transaction: it sees the transaction's writes, and they go with its rollback", async () => {
    const repo = createInstanceRepository(fx.store);
    const seen = await transaction(fx.store, async (trx) => {
      await createInstanceRepository({ ...fx.store, db: trx }).create(
        newInstance('i-5', { host: 'h3', vmState: 'active', powerState: 'running' })
      );
      return (await byHostAndState(trx, { host: 'h3', vmState: 'active' })).rows.map((r) => r.instance_id);
    });
    expect(seen).toEqual(['i-5']);
    await expect(
      transaction(fx.store, async (trx) => {
        await createInstanceRepository({ ...fx.store, db: trx }).create(
          newInstance('i-6', { host: 'h3', vmState: 'active', powerState: 'running' })
        );
        throw new Error('roll back');
      })
    ).rejects.toThrow('roll back');
    expect((await byHostAndState(fx.store.db, { host: 'h3', vmState: 'active' })).rows).toHaveLength(1);
    expect(await repo.find('i-6')).toBeUndefined();
  });

  it('refuses a shape a value does not reach as a parameter, naming it, before running anything', async () => {
    const ignoresHost = prepared((db, p: { host: string; vmState: string }) =>
      db.selectFrom('instances').select('instance_id').where('vm_state', '=', p.vmState)
    );
    await expect(ignoresHost(fx.store.db, { host: 'h1', vmState: 'active' })).rejects.toThrow(
      /prepared query: host reached no parameter of: select "instance_id" from "instances"/
    );
  });

  it('refuses a value written into the SQL text, where another call could not change it', async () => {
    const inlined = prepared((db, p: { name: string }) =>
      db.selectFrom('instances').select('instance_id').where('name', '=', sql.lit(p.name))
    );
    await expect(inlined(fx.store.db, { name: 'vm' })).rejects.toThrow(/a value reached the SQL text/);
  });
});
