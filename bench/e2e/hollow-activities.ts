import { Context } from '@temporalio/activity';

/** The baselines' activities: return their argument, nothing else (`beat` heartbeats once first). */
export function createHollowActivities() {
  return {
    noop(value: string): Promise<string> {
      return Promise.resolve(value);
    },
    /** A compute step with a heartbeat timeout: one heartbeat, as the compute worker's automatic one. */
    beat(value: string): Promise<string> {
      Context.current().heartbeat();
      return Promise.resolve(value);
    },
  };
}
