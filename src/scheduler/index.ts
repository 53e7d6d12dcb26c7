/** The pure scheduler engine: filters, weighers and selectDestinations. No I/O, no Temporal, no env. */
export * from './types';
export * from './filters';
export * from './weighers';
export { explainRejections, eliminatingFilter, type HostVerdict } from './explain';
export { consumeFromRequest, selectDestinations } from './select-destinations';
