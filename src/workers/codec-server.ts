/**
 * `npm run codec-server`: the codec server for the Web UI and the stock `temporal` CLI
 * (`--codec-endpoint http://127.0.0.1:8234`), with the key file of CONDUCTOR_CODEC_KEY_FILE. Listens on
 * CONDUCTOR_CODEC_HOST:CONDUCTOR_CODEC_PORT (loopback by default); allows the Web UI's origins
 * (CONDUCTOR_CODEC_CORS_ORIGINS, comma-separated; default the local UI on TEMPORAL_UI_PORT); checks the
 * Authorization header when CONDUCTOR_CODEC_AUTH is set.
 */
import { AesGcmPayloadCodec, loadCodecKeys } from './codec';
import { createCodecServer, defaultCodecOrigins } from './codec-http';
import { loadEnv } from './config';

function main(): void {
  const env = loadEnv();
  if (!env.CONDUCTOR_CODEC_KEY_FILE) throw new Error('CONDUCTOR_CODEC_KEY_FILE is not set: no key to serve');
  const keys = loadCodecKeys(env.CONDUCTOR_CODEC_KEY_FILE);
  const origins = env.CONDUCTOR_CODEC_CORS_ORIGINS
    ? env.CONDUCTOR_CODEC_CORS_ORIGINS.split(',')
        .map((o) => o.trim())
        .filter(Boolean)
    : defaultCodecOrigins(env.TEMPORAL_UI_PORT);
  const server = createCodecServer({ codec: new AesGcmPayloadCodec(keys), origins, auth: env.CONDUCTOR_CODEC_AUTH });
  server.listen(env.CONDUCTOR_CODEC_PORT, env.CONDUCTOR_CODEC_HOST, () => {
    console.log(
      `codec server listening on http://${env.CONDUCTOR_CODEC_HOST}:${env.CONDUCTOR_CODEC_PORT} ` +
        `(encrypting with key "${keys.currentKeyId}", ${keys.keys.size} key(s); origins ${origins.join(', ')}` +
        `${env.CONDUCTOR_CODEC_AUTH ? '; Authorization required' : ''})`
    );
  });
  for (const signal of ['SIGINT', 'SIGTERM'] as const) process.on(signal, () => server.close(() => process.exit(0)));
}

try {
  main();
} catch (err) {
  console.error(`codec server: ${(err as Error).message}`);
  process.exit(1);
}
