import type { FastifyInstance } from 'fastify';

/** A Fastify plugin of a function that registers routes on its scope. */
export function plugin(register: (scope: FastifyInstance) => void) {
  return (scope: FastifyInstance, _options: unknown, done: (err?: Error) => void): void => {
    register(scope);
    done();
  };
}
