/**
 * Min-max normalisation into [0, 1] (nova/weights.py normalize). When every value is the same the
 * weigher cannot tell the hosts apart, and they all get 0.
 */
export function normalize(values: readonly number[]): number[] {
  if (values.length === 0) return [];
  let min = Infinity;
  let max = -Infinity;
  for (const v of values) {
    if (v < min) min = v;
    if (v > max) max = v;
  }
  if (min === max) return values.map(() => 0);
  const range = max - min;
  return values.map((v) => (v - min) / range);
}
