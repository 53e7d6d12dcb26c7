import { describe, expect, it } from 'vitest';

import {
  BuildInstanceInputSchema,
  guestSecrets,
  RebuildInputSchema,
  USER_DATA_MAX_LENGTH,
} from '../../../src/domain/schemas';

const build = { name: 'vm1', flavor: 'm1.small', image: 'cirros' };
const instanceId = '8f6f2a48-5a2c-4d0e-9b6e-6f1f0c3a9e21';
const issues = (r: { success: boolean; error?: { issues: Array<{ path: PropertyKey[]; message: string }> } }) =>
  (r.error?.issues ?? []).map((i) => `${i.path.join('.')}: ${i.message}`);

describe('adminPassword and userData (Nova adminPass, user_data)', () => {
  it('are optional on a build and a rebuild, and kept when given', () => {
    expect(BuildInstanceInputSchema.parse(build)).not.toHaveProperty('adminPassword');
    const userData = Buffer.from('#cloud-config\n').toString('base64');
    expect(BuildInstanceInputSchema.parse({ ...build, adminPassword: 's3cret', userData })).toMatchObject({
      adminPassword: 's3cret',
      userData,
    });
    expect(RebuildInputSchema.parse({ instanceId, adminPassword: 's3cret', userData })).toMatchObject({
      adminPassword: 's3cret',
      userData,
    });
    expect(RebuildInputSchema.parse({ instanceId, evacuate: true, adminPassword: 's3cret' })).toMatchObject({
      adminPassword: 's3cret',
    });
  });

  it('userData must be base64, at most 65535 characters (Nova’s limit)', () => {
    expect(issues(BuildInstanceInputSchema.safeParse({ ...build, userData: 'not base64!' }))).toEqual([
      'userData: userData must be base64',
    ]);
    expect(issues(BuildInstanceInputSchema.safeParse({ ...build, userData: 'abc' }))).toEqual([
      'userData: userData must be base64',
    ]);
    // Base64 comes in fours: 65532 characters is the longest that fits.
    const longest = 'A'.repeat(USER_DATA_MAX_LENGTH - 3);
    expect(BuildInstanceInputSchema.safeParse({ ...build, userData: longest }).success).toBe(true);
    expect(issues(BuildInstanceInputSchema.safeParse({ ...build, userData: longest + 'AAAA' }))).toEqual([
      'userData: userData is at most 65535 characters of base64',
    ]);
  });

  it('an invalid secret is refused without echoing it', () => {
    const result = BuildInstanceInputSchema.safeParse({ ...build, adminPassword: 'x'.repeat(256) });
    expect(result.success).toBe(false);
    expect(JSON.stringify(result.error?.issues)).not.toContain('x'.repeat(256));
  });

  it('guestSecrets passes on only the secrets given', () => {
    expect(guestSecrets({})).toEqual({});
    expect(guestSecrets({ adminPassword: 'a' })).toEqual({ adminPassword: 'a' });
    expect(guestSecrets({ adminPassword: 'a', userData: 'QQ==' })).toEqual({ adminPassword: 'a', userData: 'QQ==' });
  });
});
