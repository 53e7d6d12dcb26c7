/**
 * Queries of a fixed shape, built and compiled by Kysely once per dialect and run again with new values.
 * Kysely builds a query's operation tree and compiles it to SQL on every call, which was most of the
 * CPU a conductor spent in its store on a build (about fifty queries, a few dozen shapes); a query whose
 * SQL never changes needs neither more than once. The builder receives a marker for each value, and the
 * compiled parameters that are markers are the slots each call fills; the SQL text is the dialect's own,
 * so the same prepared query runs on SQLite and on PostgreSQL.
 *
 * Only a shape that does not depend on its values can be prepared: no list whose length varies (`in`),
 * no clause added for some values only, no value transformed inside the builder (pass the transformed
 * value instead). The first compile checks that every value reaches a parameter and none reaches the
 * SQL text.
 */
import type { Compilable, CompiledQuery, Kysely, QueryResult } from 'kysely';
import { createQueryId } from 'kysely';

import type { Database } from './schema';

type Db = Kysely<Database>;

/** What a prepared query's values may be: what every driver binds as it is. */
export type PreparedValue = string | number | null;

/** A marker no real value carries (NUL is not valid in the text our columns hold). */
const MARKER = '\u0000prepared:';

interface Template {
  compiled: CompiledQuery;
  /** For each compiled parameter, the value that fills it, or undefined for a constant of the shape. */
  slots: (string | undefined)[];
}

/**
 * A query built by `build` once per dialect (on the first call on a store of that dialect) and run with
 * `values` in the caller's connection or transaction. Returns the driver's result (`rows` typed as the
 * builder's output).
 */
export function prepared<P extends Record<string, PreparedValue>, O>(
  build: (db: Db, values: P) => Compilable<O>
): (db: Db, values: P) => Promise<QueryResult<O>> {
  // Per dialect adapter: a transaction shares its store's.
  const templates = new WeakMap<object, Template>();
  return async (db, values) => {
    const { adapter } = db.getExecutor();
    let template = templates.get(adapter);
    if (template === undefined) {
      template = compileTemplate(db, build, Object.keys(values));
      templates.set(adapter, template);
    }
    const { compiled, slots } = template;
    const parameters = compiled.parameters.map((constant, i) => {
      const key = slots[i];
      return key === undefined ? constant : values[key];
    });
    return db.executeQuery<O>({ ...compiled, parameters, queryId: createQueryId() });
  };
}

function compileTemplate<P extends Record<string, PreparedValue>, O>(
  db: Db,
  build: (db: Db, values: P) => Compilable<O>,
  keys: string[]
): Template {
  const markers = Object.fromEntries(keys.map((key) => [key, `${MARKER}${key}`])) as P;
  const compiled = build(db, markers).compile();
  if (compiled.sql.includes(MARKER))
    throw new Error(`prepared query: a value reached the SQL text, not a parameter: ${compiled.sql}`);
  const slots = compiled.parameters.map((p) =>
    typeof p === 'string' && p.startsWith(MARKER) ? p.slice(MARKER.length) : undefined
  );
  const missing = keys.filter((key) => !slots.includes(key));
  if (missing.length > 0)
    throw new Error(`prepared query: ${missing.join(', ')} reached no parameter of: ${compiled.sql}`);
  return { compiled, slots };
}
