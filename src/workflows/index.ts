/** Every workflow type the conductor worker runs; this module is the bundler's entry point. */
export { buildAttempt, buildInstance } from './build-instance';
export { deleteInstance } from './delete-instance';
export { hostGuests } from './host-guests';
export { placementAttempt } from './placement-attempt';
export { rebuild } from './rebuild';
export { reconcileHost } from './reconcile-host';
export { registerHost } from './register-host';
export { resizeAttempt, resizeMigrate } from './resize-migrate';
export { serverGroup } from './server-group';
export { start } from './start';
export { stop } from './stop';
