/** The baselines' activity: returns its argument, nothing else. */
export function createHollowActivities() {
  return {
    noop(value: string): Promise<string> {
      return Promise.resolve(value);
    },
  };
}
