import { describe, expect, it, vi } from 'vitest';

import { SLOT_WAIT_HEARTBEAT_MS, Slots } from '../../../src/shared/slots';

/** A step that holds its slot until `finish()`. */
function held(): { promise: Promise<void>; finish: () => void } {
  let finish!: () => void;
  const promise = new Promise<void>((resolve) => (finish = resolve));
  return { promise, finish };
}

describe('Slots: the one counting semaphore (host limits, the QEMU heavy steps, the fake file lock)', () => {
  it('lets `limit` holders in, serves waiters first come first served, and frees a slot when a holder throws', async () => {
    const slots = new Slots(2);
    const a = held();
    const b = held();
    const order: string[] = [];
    const first = slots.run(() => a.promise);
    const second = slots.run(async () => {
      await b.promise;
      throw new Error('spawn failed');
    });
    const third = slots.run(() => Promise.resolve(void order.push('third')));
    const fourth = slots.run(() => Promise.resolve(void order.push('fourth')));
    expect([slots.running, slots.waiting]).toEqual([2, 2]);
    b.finish();
    await expect(second).rejects.toThrow('spawn failed');
    await vi.waitFor(() => expect(order).toEqual(['third', 'fourth']));
    a.finish();
    await Promise.all([first, third, fourth]);
    expect([slots.running, slots.waiting]).toEqual([0, 0]);
  });

  it('an aborted waiter leaves the queue with the reason and takes no slot; an aborted signal never enters', async () => {
    const slots = new Slots(1);
    const a = held();
    const holder = slots.run(() => a.promise);
    const controller = new AbortController();
    const ran = vi.fn<() => Promise<void>>(() => Promise.resolve());
    const waiting = slots.run(ran, { signal: controller.signal });
    controller.abort(new Error('deleted while queued'));
    await expect(waiting).rejects.toThrow('deleted while queued');
    expect(slots.waiting).toBe(0);
    await expect(slots.run(ran, { signal: controller.signal })).rejects.toThrow('deleted while queued');
    a.finish();
    await holder;
    expect(ran).not.toHaveBeenCalled();
    expect(slots.running).toBe(0);
  });

  it('calls onWait every SLOT_WAIT_HEARTBEAT_MS while a step waits, and no more once it holds its slot', async () => {
    vi.useFakeTimers();
    try {
      const slots = new Slots(1);
      const a = held();
      const holder = slots.run(() => a.promise);
      const onWait = vi.fn();
      const waiting = slots.run(() => Promise.resolve('done'), { onWait });
      await vi.advanceTimersByTimeAsync(3 * SLOT_WAIT_HEARTBEAT_MS);
      expect(onWait).toHaveBeenCalledTimes(3);
      a.finish();
      await holder;
      await expect(waiting).resolves.toBe('done');
      await vi.advanceTimersByTimeAsync(3 * SLOT_WAIT_HEARTBEAT_MS);
      expect(onWait).toHaveBeenCalledTimes(3);
    } finally {
      vi.useRealTimers();
    }
  });

  it('0 is no limit; a negative or fractional limit is refused', async () => {
    const slots = new Slots(0);
    const gates = [held(), held(), held()];
    const runs = gates.map((g) => slots.run(() => g.promise));
    expect([slots.running, slots.waiting]).toEqual([3, 0]);
    for (const g of gates) g.finish();
    await Promise.all(runs);
    expect(() => new Slots(-1)).toThrow('a slot limit is a whole number >= 0, not -1');
    expect(() => new Slots(1.5)).toThrow('a slot limit is a whole number >= 0, not 1.5');
  });
});
