import { describe, expect, it } from 'vitest';

import { eliminatingFilter, explainRejections } from '../../../src/scheduler/explain';
import { makeHost, makeRequest } from './fixtures';

describe('explainRejections', () => {
  it('names the first active filter that rejects each host, and null for hosts that pass', () => {
    const hosts = [
      makeHost('ok'),
      makeHost('down', { up: false, used: { VCPU: 16 } }),
      makeHost('full', { used: { VCPU: 16 } }),
      makeHost('ignored', { up: false }),
      makeHost('arm', { architecture: 'aarch64' }),
    ];
    const req = makeRequest({ ignoreHosts: new Set(['ignored']), image: { properties: { hwArchitecture: 'x86_64' } } });
    expect(explainRejections(hosts, req)).toEqual([
      { host: 'ok', rejectedBy: null },
      { host: 'down', rejectedBy: 'ComputeFilter' },
      { host: 'full', rejectedBy: 'ResourcesFilter' },
      { host: 'ignored', rejectedBy: 'IgnoreHostsFilter' },
      { host: 'arm', rejectedBy: 'ImagePropertiesFilter' },
    ]);
  });

  it('skips filters that do not run on rebuild', () => {
    const req = makeRequest({ isRebuild: true });
    expect(explainRejections([makeHost('down', { up: false })], req)).toEqual([{ host: 'down', rejectedBy: null }]);
  });
});

describe('eliminatingFilter', () => {
  it('is the filter that rejected the last surviving hosts', () => {
    const hosts = [makeHost('down', { up: false }), makeHost('full', { used: { MEMORY_MB: 32768 } })];
    expect(eliminatingFilter(hosts, makeRequest())).toBe('ResourcesFilter');
  });

  it('is null when some host passes, or there are no hosts', () => {
    expect(eliminatingFilter([makeHost('down', { up: false }), makeHost('ok')], makeRequest())).toBeNull();
    expect(eliminatingFilter([], makeRequest())).toBeNull();
  });
});
