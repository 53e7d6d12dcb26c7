/**
 * The payload codec: AES-256-GCM over every payload the workers and the CLIs send to Temporal, when a
 * key file is configured (CONDUCTOR_CODEC_KEY_FILE). Without one the data converter is the SDK's
 * default and nothing changes.
 *
 * Whole payloads are encrypted, not only the fields that carry secrets (adminPassword, userData): a
 * secret given to a build travels on in the activity inputs, child workflow inputs and heartbeats, and
 * results carry names and hosts; encrypting every payload protects all of them with one rule and no
 * list of fields to keep in step. Search attributes and failure messages are not payloads and stay
 * readable (no secret goes into them).
 *
 * An encrypted payload: metadata `encoding: binary/encrypted` and `encryption-key-id: <id>`; data: a
 * 12-byte IV, then the ciphertext of the original Payload (protobuf-encoded), then the 16-byte GCM tag.
 * The key id is the additional authenticated data, so a payload re-labelled with another key id fails
 * like a tampered one. Decoding leaves payloads that are not encrypted as they are (histories written
 * before a key was configured still read).
 *
 * Key file: JSON `{"current": "k2", "keys": {"k2": "<base64 of 32 bytes>", "k1": "…"}}`, or lines of
 * `keyid:base64key`, the first line the current key (encrypts), later lines older keys (decrypt only);
 * blank lines and `#` comments are ignored. Rotation: put a new key first (or make it `current`), keep
 * the old ones for as long as histories encrypted with them may be read.
 */
import { createCipheriv, createDecipheriv, randomBytes } from 'node:crypto';
import { readFileSync } from 'node:fs';

import type { DataConverter, Payload, PayloadCodec } from '@temporalio/common';
import { temporal } from '@temporalio/proto';

export const ENCRYPTED_ENCODING = 'binary/encrypted';
export const KEY_ID_METADATA = 'encryption-key-id';
const IV_BYTES = 12;
const TAG_BYTES = 16;
const KEY_BYTES = 32;
const KEY_ID = /^[A-Za-z0-9._-]{1,64}$/;

const utf8 = new TextEncoder();
const fromUtf8 = new TextDecoder();

/** A key file that cannot be used, or a payload that cannot be decrypted: the message says which and why. */
export class CodecError extends Error {
  override name = 'CodecError';
}

export interface CodecKeys {
  /** The id of the key that encrypts. */
  currentKeyId: string;
  /** Every key that decrypts, the current one included. */
  keys: ReadonlyMap<string, Buffer>;
}

function decodeKey(id: string, base64: string, source: string): Buffer {
  if (!KEY_ID.test(id)) throw new CodecError(`${source}: key id "${id}" is not 1-64 of [A-Za-z0-9._-]`);
  const text = base64.trim();
  if (!/^[A-Za-z0-9+/]+={0,2}$/.test(text)) throw new CodecError(`${source}: key "${id}" is not base64`);
  const key = Buffer.from(text, 'base64');
  if (key.length !== KEY_BYTES)
    throw new CodecError(`${source}: key "${id}" is ${key.length} bytes; AES-256 needs 32 (base64 of 32 random bytes)`);
  return key;
}

/** Parses a key file's text (JSON, or `keyid:base64key` lines); `source` names it in errors. */
export function parseCodecKeys(text: string, source = 'codec key file'): CodecKeys {
  const keys = new Map<string, Buffer>();
  let currentKeyId: string | undefined;
  const trimmed = text.trim();
  if (trimmed.startsWith('{')) {
    let parsed: unknown;
    try {
      parsed = JSON.parse(trimmed);
    } catch (err) {
      throw new CodecError(`${source}: not valid JSON: ${(err as Error).message}`);
    }
    const { current, keys: entries } = (parsed ?? {}) as { current?: unknown; keys?: unknown };
    if (typeof current !== 'string') throw new CodecError(`${source}: "current" must name the key that encrypts`);
    if (typeof entries !== 'object' || entries === null || Array.isArray(entries))
      throw new CodecError(`${source}: "keys" must map key ids to base64 keys`);
    for (const [id, value] of Object.entries(entries)) {
      if (typeof value !== 'string') throw new CodecError(`${source}: key "${id}" must be a base64 string`);
      keys.set(id, decodeKey(id, value, source));
    }
    currentKeyId = current;
  } else {
    for (const [i, raw] of text.split('\n').entries()) {
      const line = raw.trim();
      if (!line || line.startsWith('#')) continue;
      const colon = line.indexOf(':');
      if (colon < 0) throw new CodecError(`${source}: line ${i + 1} is not keyid:base64key`);
      const id = line.slice(0, colon).trim();
      if (keys.has(id)) throw new CodecError(`${source}: key id "${id}" appears twice`);
      keys.set(id, decodeKey(id, line.slice(colon + 1), source));
      currentKeyId ??= id;
    }
  }
  if (currentKeyId === undefined) throw new CodecError(`${source}: no key`);
  if (!keys.has(currentKeyId))
    throw new CodecError(`${source}: the current key "${currentKeyId}" is not among the keys`);
  return { currentKeyId, keys };
}

/** Reads and parses the key file; a missing or unreadable file is a CodecError naming it. */
export function loadCodecKeys(file: string): CodecKeys {
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (err) {
    throw new CodecError(`cannot read the codec key file ${file}: ${(err as Error).message}`);
  }
  return parseCodecKeys(text, file);
}

/** AES-256-GCM over whole payloads, encrypting with the current key and decrypting with any known one. */
export class AesGcmPayloadCodec implements PayloadCodec {
  constructor(private readonly keys: CodecKeys) {}

  encode(payloads: Payload[]): Promise<Payload[]> {
    // A throw inside the executor is a rejection, as callers of an async codec expect.
    return new Promise((resolve) => resolve(payloads.map((p) => this.encrypt(p))));
  }

  decode(payloads: Payload[]): Promise<Payload[]> {
    return new Promise((resolve) => resolve(payloads.map((p) => this.decrypt(p))));
  }

  private encrypt(payload: Payload): Payload {
    const keyId = this.keys.currentKeyId;
    const iv = randomBytes(IV_BYTES);
    const cipher = createCipheriv('aes-256-gcm', this.keys.keys.get(keyId)!, iv);
    cipher.setAAD(utf8.encode(keyId));
    const plain = temporal.api.common.v1.Payload.encode(payload).finish();
    const data = Buffer.concat([iv, cipher.update(plain), cipher.final(), cipher.getAuthTag()]);
    return {
      metadata: { encoding: utf8.encode(ENCRYPTED_ENCODING), [KEY_ID_METADATA]: utf8.encode(keyId) },
      data: new Uint8Array(data),
    };
  }

  private decrypt(payload: Payload): Payload {
    const encoding = payload.metadata?.encoding;
    if (!encoding || fromUtf8.decode(encoding) !== ENCRYPTED_ENCODING) return payload;
    const rawId = payload.metadata?.[KEY_ID_METADATA];
    if (!rawId) throw new CodecError(`an encrypted payload has no ${KEY_ID_METADATA} metadata`);
    const keyId = fromUtf8.decode(rawId);
    const key = this.keys.keys.get(keyId);
    if (!key)
      throw new CodecError(
        `a payload is encrypted with key "${keyId}", which the codec key file does not have ` +
          `(it has: ${[...this.keys.keys.keys()].join(', ')}); add the old key to decrypt it`
      );
    const data = Buffer.from(payload.data ?? new Uint8Array());
    if (data.length < IV_BYTES + TAG_BYTES) throw new CodecError(`an encrypted payload (key "${keyId}") is truncated`);
    const decipher = createDecipheriv('aes-256-gcm', key, data.subarray(0, IV_BYTES));
    decipher.setAAD(utf8.encode(keyId));
    decipher.setAuthTag(data.subarray(data.length - TAG_BYTES));
    let plain: Buffer;
    try {
      plain = Buffer.concat([decipher.update(data.subarray(IV_BYTES, data.length - TAG_BYTES)), decipher.final()]);
    } catch {
      throw new CodecError(
        `an encrypted payload (key "${keyId}") failed authentication: tampered with, or encrypted with another key of that id`
      );
    }
    const decoded = temporal.api.common.v1.Payload.decode(plain);
    return { metadata: decoded.metadata, data: decoded.data };
  }
}

/**
 * The data converter of every worker and client: the SDK's default, plus the codec when a key file is
 * configured. Throws a CodecError (the process stops with its message) for a bad key file.
 */
export function dataConverterFor(env: { CONDUCTOR_CODEC_KEY_FILE?: string | undefined }): DataConverter | undefined {
  if (!env.CONDUCTOR_CODEC_KEY_FILE) return undefined;
  return { payloadCodecs: [new AesGcmPayloadCodec(loadCodecKeys(env.CONDUCTOR_CODEC_KEY_FILE))] };
}
