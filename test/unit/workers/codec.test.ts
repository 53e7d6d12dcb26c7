import { randomBytes } from 'node:crypto';
import { mkdtempSync, writeFileSync } from 'node:fs';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import path from 'node:path';

import { defaultPayloadConverter, type Payload } from '@temporalio/common';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

import {
  AesGcmPayloadCodec,
  CodecError,
  dataConverterFor,
  ENCRYPTED_ENCODING,
  KEY_ID_METADATA,
  loadCodecKeys,
  parseCodecKeys,
} from '../../../src/workers/codec';
import { createCodecServer } from '../../../src/workers/codec-http';

const b64 = () => randomBytes(32).toString('base64');
const text = (bytes: Uint8Array | null | undefined) => new TextDecoder().decode(bytes ?? new Uint8Array());
const secretInput = { name: 'vm1', flavor: 'm1.small', image: 'cirros', adminPassword: 'hunter2-s3cret' };
const plain = (): Payload => defaultPayloadConverter.toPayload(secretInput);

describe('payload codec (AES-256-GCM)', () => {
  const k1 = b64();
  const k2 = b64();
  const codec = new AesGcmPayloadCodec(parseCodecKeys(`k1:${k1}\n`));

  it('round-trips a payload: decode(encode(p)) is p, metadata and data', async () => {
    const [encrypted] = await codec.encode([plain()]);
    const [decrypted] = await codec.decode([encrypted!]);
    expect(defaultPayloadConverter.fromPayload(decrypted!)).toEqual(secretInput);
    expect(text(decrypted!.metadata!.encoding)).toBe('json/plain');
  });

  it('encrypts: binary/encrypted encoding, the key id in the metadata, no plain text in the data', async () => {
    const [encrypted] = await codec.encode([plain()]);
    expect(text(encrypted!.metadata!.encoding)).toBe(ENCRYPTED_ENCODING);
    expect(text(encrypted!.metadata![KEY_ID_METADATA])).toBe('k1');
    expect(Object.keys(encrypted!.metadata!).sort()).toEqual(['encoding', KEY_ID_METADATA].sort());
    expect(Buffer.from(encrypted!.data!).toString('latin1')).not.toContain('hunter2');
    expect(Buffer.from(encrypted!.data!).toString('latin1')).not.toContain('json/plain');
  });

  it('uses a fresh IV per payload: the same input twice is two different ciphertexts', async () => {
    const [a, b] = await codec.encode([plain(), plain()]);
    expect(Buffer.from(a!.data!).equals(Buffer.from(b!.data!))).toBe(false);
  });

  it('an unknown key id is a clear CodecError naming the key and the keys it has', async () => {
    const [encrypted] = await new AesGcmPayloadCodec(parseCodecKeys(`k2:${k2}`)).encode([plain()]);
    await expect(codec.decode([encrypted!])).rejects.toThrow(CodecError);
    await expect(codec.decode([encrypted!])).rejects.toThrow(
      /key "k2", which the codec key file does not have \(it has: k1\)/
    );
  });

  it('tampered ciphertext fails authentication', async () => {
    const [encrypted] = await codec.encode([plain()]);
    const data = Buffer.from(encrypted!.data!);
    data[20] = data[20]! ^ 0x01;
    await expect(codec.decode([{ ...encrypted!, data: new Uint8Array(data) }])).rejects.toThrow(
      /failed authentication/
    );
  });

  it('a payload re-labelled with another known key id fails authentication (the key id is authenticated)', async () => {
    const both = new AesGcmPayloadCodec(parseCodecKeys(`k1:${k1}\nk2:${k2}`));
    const [encrypted] = await both.encode([plain()]);
    const relabelled = {
      ...encrypted!,
      metadata: { ...encrypted!.metadata, [KEY_ID_METADATA]: new TextEncoder().encode('k2') },
    };
    await expect(both.decode([relabelled])).rejects.toThrow(/failed authentication/);
  });

  it('rotation: the first line encrypts, older keys still decrypt what they encrypted', async () => {
    const [old] = await codec.encode([plain()]);
    const rotated = new AesGcmPayloadCodec(parseCodecKeys(`# rotated\nk2:${k2}\nk1:${k1}\n`));
    const [fresh] = await rotated.encode([plain()]);
    expect(text(fresh!.metadata![KEY_ID_METADATA])).toBe('k2');
    const decoded = await rotated.decode([old!, fresh!]);
    expect(decoded.map((p) => defaultPayloadConverter.fromPayload(p))).toEqual([secretInput, secretInput]);
  });

  it('leaves payloads that are not encrypted as they are (histories from before a key was set)', async () => {
    const p = plain();
    expect(await codec.decode([p])).toEqual([p]);
  });

  it('reads the JSON key file with a current key and older ones', () => {
    const keys = parseCodecKeys(JSON.stringify({ current: 'b', keys: { a: k1, b: k2 } }));
    expect(keys.currentKeyId).toBe('b');
    expect([...keys.keys.keys()]).toEqual(['a', 'b']);
  });

  it.each([
    ['a short key', `k1:${randomBytes(16).toString('base64')}`, /16 bytes; AES-256 needs 32/],
    ['not base64', 'k1:not*base64', /not base64/],
    ['no key', '# nothing\n', /no key/],
    ['a line without a colon', 'justakey', /line 1 is not keyid:base64key/],
    ['a current key that is not among the keys', JSON.stringify({ current: 'x', keys: { a: k1 } }), /current key "x"/],
    ['a duplicated id', `a:${k1}\na:${k2}`, /appears twice/],
  ])('refuses a key file with %s', (_what, file, message) => {
    expect(() => parseCodecKeys(file)).toThrow(message);
  });

  it('no key file configured: no codec (the SDK default data converter)', () => {
    expect(dataConverterFor({})).toBeUndefined();
  });

  it('a missing key file is a CodecError naming it', () => {
    expect(() => loadCodecKeys('/nonexistent/codec.key')).toThrow(
      /cannot read the codec key file \/nonexistent\/codec.key/
    );
  });

  it('a configured key file gives a data converter whose codec encrypts with its current key', async () => {
    const dir = mkdtempSync(path.join(tmpdir(), 'codec-'));
    const file = path.join(dir, 'codec.key');
    writeFileSync(file, `k9:${k1}\n`);
    const [encrypted] = await dataConverterFor({ CONDUCTOR_CODEC_KEY_FILE: file })!.payloadCodecs![0]!.encode([
      plain(),
    ]);
    expect(text(encrypted!.metadata![KEY_ID_METADATA])).toBe('k9');
  });
});

describe('codec server (Temporal remote codec protocol)', () => {
  const codec = new AesGcmPayloadCodec(parseCodecKeys(`k1:${b64()}`));
  const server = createCodecServer({ codec, origins: ['http://localhost:8233'], auth: 'Bearer let-me-in' });
  let base = '';
  beforeAll(async () => {
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  });
  afterAll(() => new Promise<void>((resolve) => server.close(() => resolve())));

  const toJson = (p: Payload) => ({
    metadata: Object.fromEntries(
      Object.entries(p.metadata ?? {}).map(([k, v]) => [k, Buffer.from(v).toString('base64')])
    ),
    data: Buffer.from(p.data ?? new Uint8Array()).toString('base64'),
  });
  const post = (op: string, body: unknown, headers: Record<string, string> = { Authorization: 'Bearer let-me-in' }) =>
    fetch(`${base}/${op}`, {
      method: 'POST',
      headers: { 'Content-Type': 'application/json', ...headers },
      body: JSON.stringify(body),
    });

  it('/encode then /decode returns the plain payload', async () => {
    const encoded = (await (await post('encode', { payloads: [toJson(plain())] })).json()) as {
      payloads: ReturnType<typeof toJson>[];
    };
    expect(Buffer.from(encoded.payloads[0]!.metadata.encoding!, 'base64').toString()).toBe(ENCRYPTED_ENCODING);
    const res = await post('decode', encoded);
    expect(res.status).toBe(200);
    const decoded = (await res.json()) as { payloads: ReturnType<typeof toJson>[] };
    expect(JSON.parse(Buffer.from(decoded.payloads[0]!.data, 'base64').toString())).toEqual(secretInput);
    expect(Buffer.from(decoded.payloads[0]!.metadata.encoding!, 'base64').toString()).toBe('json/plain');
  });

  it('refuses a request without the Authorization header (401), and decodes nothing for it', async () => {
    const [encrypted] = await codec.encode([plain()]);
    const res = await post('decode', { payloads: [toJson(encrypted!)] }, {});
    expect(res.status).toBe(401);
    expect(await res.text()).not.toContain('hunter2');
  });

  it('answers the Web UI origin preflight with CORS headers, and no other origin', async () => {
    const ok = await fetch(`${base}/decode`, {
      method: 'OPTIONS',
      headers: { Origin: 'http://localhost:8233', 'Access-Control-Request-Headers': 'content-type,x-namespace' },
    });
    expect(ok.status).toBe(204);
    expect(ok.headers.get('access-control-allow-origin')).toBe('http://localhost:8233');
    expect(ok.headers.get('access-control-allow-headers')).toMatch(/X-Namespace/);
    const other = await fetch(`${base}/decode`, { method: 'OPTIONS', headers: { Origin: 'http://evil.example' } });
    expect(other.headers.get('access-control-allow-origin')).toBeNull();
  });

  it('a payload it cannot decrypt is a 400 with the reason; a bad body is a 400; another path is a 404', async () => {
    const foreign = new AesGcmPayloadCodec(parseCodecKeys(`k7:${b64()}`));
    const [encrypted] = await foreign.encode([plain()]);
    const res = await post('decode', { payloads: [toJson(encrypted!)] });
    expect(res.status).toBe(400);
    expect(((await res.json()) as { message: string }).message).toMatch(/key "k7"/);
    expect((await post('decode', { nope: 1 })).status).toBe(400);
    // No list at all (the stock CLI's query without arguments) is an empty one.
    expect(await (await post('encode', {})).json()).toEqual({ payloads: [] });
    expect((await post('other', { payloads: [] })).status).toBe(404);
  });
});
