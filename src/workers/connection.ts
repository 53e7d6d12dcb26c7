import { setTimeout as sleep } from 'node:timers/promises';

import { Connection } from '@temporalio/client';
import { DefaultLogger, NativeConnection, Runtime } from '@temporalio/worker';
import type { Logger } from '@temporalio/worker';

import { WORKER_HEARTBEAT_MS } from '../activities/scheduler/liveness';
import { type Env, temporalConnectionOptions } from './config';
import { jsonLogFunction } from './json-log';

/**
 * Installs the SDK runtime once per process: JSON-line logs at the configured level (or the SDK's
 * pretty format with LOG_FORMAT=pretty), Prometheus metrics on METRICS_PORT when it is set, and worker
 * heartbeats every WORKER_HEARTBEAT_MS (host liveness reads them in bulk).
 */
export function installRuntime(env: Env, processName: string): void {
  const logger = new DefaultLogger(env.LOG_LEVEL, env.LOG_FORMAT === 'json' ? jsonLogFunction(processName) : undefined);
  Runtime.install({
    logger: withoutNoWorkflowsWarning(logger),
    // Worker heartbeats (the server's ListWorkers): how the scheduler sees every host alive in one call.
    workerHeartbeatInterval: WORKER_HEARTBEAT_MS,
    telemetryOptions: env.METRICS_PORT
      ? { metrics: { prometheus: { bindAddress: `${env.METRICS_HOST}:${env.METRICS_PORT}` } } }
      : undefined,
  });
}

/**
 * The SDK warns "No workflows registered, not polling for workflow tasks" at the start of every worker
 * without workflows: here the scheduler and the compute workers, which register none on purpose (the
 * conductor worker always loads the workflow bundle, so it never says it). The warning is dropped.
 */
export function withoutNoWorkflowsWarning(logger: Logger): Logger {
  const quiet = (message: string) => message.startsWith('No workflows registered');
  return {
    log(level, message, meta) {
      if (!quiet(message)) logger.log(level, message, meta);
    },
    trace(message, meta) {
      logger.trace(message, meta);
    },
    debug(message, meta) {
      logger.debug(message, meta);
    },
    info(message, meta) {
      logger.info(message, meta);
    },
    warn(message, meta) {
      if (!quiet(message)) logger.warn(message, meta);
    },
    error(message, meta) {
      logger.error(message, meta);
    },
  };
}

/**
 * Connects a worker, retrying while the server starts (the launcher starts workers right after the
 * dev server). Gives up after `timeoutMs` with the address in the message.
 */
export async function connectWorker(env: Env, timeoutMs = 60_000): Promise<NativeConnection> {
  return retryConnect(() => NativeConnection.connect(temporalConnectionOptions(env)), env, timeoutMs);
}

/** A client connection, with the same retry. */
export async function connectClient(env: Env, timeoutMs = 60_000): Promise<Connection> {
  return retryConnect(
    () => Connection.connect({ ...temporalConnectionOptions(env), connectTimeout: 2_000 }),
    env,
    timeoutMs
  );
}

async function retryConnect<T>(connect: () => Promise<T>, env: Env, timeoutMs: number): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    try {
      return await connect();
    } catch (err) {
      if (Date.now() > deadline) {
        throw new Error(`cannot reach Temporal at ${env.TEMPORAL_ADDRESS}: ${(err as Error).message}`, { cause: err });
      }
      await sleep(500);
    }
  }
}
