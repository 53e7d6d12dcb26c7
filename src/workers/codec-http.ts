/**
 * The codec server's HTTP handler (Temporal's remote codec protocol, for the Web UI and the stock
 * `temporal` CLI's `--codec-endpoint`): POST /encode and POST /decode take `{"payloads": [...]}` (each
 * payload in protobuf JSON: `metadata` values and `data` base64) and answer the same shape. CORS lets
 * the Web UI's origins call it from the browser (preflight included); with `auth` set, a request whose
 * Authorization header is not exactly it is refused with 401.
 */
import { timingSafeEqual } from 'node:crypto';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';

import type { Payload, PayloadCodec } from '@temporalio/common';

/** A request body larger than this is refused (Temporal's own payload limit is 2 MiB per payload). */
const MAX_BODY_BYTES = 16 * 1024 * 1024;

export interface CodecServerOptions {
  codec: PayloadCodec;
  /** Browser origins allowed to call (the Web UI's address), e.g. http://localhost:8233. */
  origins: readonly string[];
  /** When set, the exact Authorization header a request must carry. */
  auth?: string | undefined;
}

interface JsonPayload {
  metadata?: Record<string, string>;
  data?: string;
}

function fromJson(p: JsonPayload): Payload {
  const metadata: Record<string, Uint8Array> = {};
  for (const [k, v] of Object.entries(p.metadata ?? {})) metadata[k] = new Uint8Array(Buffer.from(v, 'base64'));
  return { metadata, data: new Uint8Array(Buffer.from(p.data ?? '', 'base64')) };
}

function toJson(p: Payload): JsonPayload {
  const metadata: Record<string, string> = {};
  for (const [k, v] of Object.entries(p.metadata ?? {})) metadata[k] = Buffer.from(v).toString('base64');
  return { metadata, data: Buffer.from(p.data ?? new Uint8Array()).toString('base64') };
}

function authorized(req: IncomingMessage, auth: string | undefined): boolean {
  if (auth === undefined) return true;
  const given = Buffer.from(req.headers.authorization ?? '');
  const wanted = Buffer.from(auth);
  return given.length === wanted.length && timingSafeEqual(given, wanted);
}

async function readBody(req: IncomingMessage): Promise<string> {
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of req as AsyncIterable<Buffer>) {
    size += chunk.length;
    if (size > MAX_BODY_BYTES) throw new RangeError('request body too large');
    chunks.push(chunk);
  }
  return Buffer.concat(chunks).toString('utf8');
}

function send(res: ServerResponse, status: number, body: unknown): void {
  res.writeHead(status, { 'Content-Type': 'application/json' });
  res.end(JSON.stringify(body));
}

/** The request handler, on its own so a test can mount it on any server. */
export function codecRequestHandler(options: CodecServerOptions) {
  return async (req: IncomingMessage, res: ServerResponse): Promise<void> => {
    const origin = req.headers.origin;
    if (origin !== undefined && options.origins.includes(origin)) {
      res.setHeader('Access-Control-Allow-Origin', origin);
      res.setHeader('Access-Control-Allow-Credentials', 'true');
      res.setHeader('Vary', 'Origin');
    }
    if (req.method === 'OPTIONS') {
      res.setHeader('Access-Control-Allow-Methods', 'POST, OPTIONS');
      res.setHeader('Access-Control-Allow-Headers', 'Authorization, Content-Type, X-Namespace');
      res.setHeader('Access-Control-Max-Age', '600');
      res.writeHead(204);
      res.end();
      return;
    }
    const url = new URL(req.url ?? '/', 'http://codec');
    const op = url.pathname.replace(/\/+$/, '').split('/').pop();
    if (req.method !== 'POST' || (op !== 'encode' && op !== 'decode'))
      return send(res, 404, { message: 'POST /encode or /decode' });
    if (!authorized(req, options.auth)) return send(res, 401, { message: 'unauthorized' });
    let payloads: Payload[];
    try {
      const body = JSON.parse(await readBody(req)) as { payloads?: unknown } | null;
      // No payloads at all (a query without arguments: the stock CLI sends no list) is an empty list.
      const onlyPayloads =
        body !== null && typeof body === 'object' && Object.keys(body).every((k) => k === 'payloads');
      const given = onlyPayloads ? (body.payloads ?? []) : undefined;
      if (!Array.isArray(given)) throw new TypeError('the body must be {"payloads": [...]}');
      payloads = (given as JsonPayload[]).map(fromJson);
    } catch (err) {
      return send(res, err instanceof RangeError ? 413 : 400, { message: (err as Error).message });
    }
    try {
      const out = op === 'encode' ? await options.codec.encode(payloads) : await options.codec.decode(payloads);
      send(res, 200, { payloads: out.map(toJson) });
    } catch (err) {
      // A payload this codec cannot decrypt (unknown key id, tampered): the message says which.
      send(res, 400, { message: (err as Error).message });
    }
  };
}

/** An http.Server serving the codec (not yet listening). */
export function createCodecServer(options: CodecServerOptions): Server {
  const handle = codecRequestHandler(options);
  return createServer((req, res) => {
    handle(req, res).catch((err: unknown) => {
      if (!res.headersSent) send(res, 500, { message: (err as Error).message });
      else res.destroy();
    });
  });
}

/** The origins allowed by default: the Web UI of `npm start` on localhost and 127.0.0.1. */
export function defaultCodecOrigins(uiPort: number): string[] {
  return [`http://localhost:${uiPort}`, `http://127.0.0.1:${uiPort}`];
}
