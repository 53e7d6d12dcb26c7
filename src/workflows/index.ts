/** Every workflow type the conductor worker runs; this module is the bundler's entry point. */
export { buildAttempt, buildInstance } from './build-instance';
export { registerHost } from './register-host';
