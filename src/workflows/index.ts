/** Every workflow type the conductor worker runs; this module is the bundler's entry point. */
export { buildAttempt, buildInstance } from './build-instance';
export { consoleOutput } from './console-output';
export { deleteInstance } from './delete-instance';
export { hostGuests } from './host-guests';
export { liveMigrate } from './live-migrate';
export { pause, resume, suspend, unpause } from './pause';
export { placementAttempt } from './placement-attempt';
export { reboot } from './reboot';
export { rebuild } from './rebuild';
export { reconcile } from './reconcile';
export { reconcileHost } from './reconcile-host';
export { registerHost } from './register-host';
export { resetState } from './reset-state';
export { resizeAttempt, resizeMigrate } from './resize-migrate';
export { serverGroup } from './server-group';
export { setHostService } from './set-host-service';
export { start } from './start';
export { stop } from './stop';
