/**
 * A small QMP client (QEMU Machine Protocol) on a UNIX socket: reads the greeting, negotiates
 * `qmp_capabilities`, then sends commands with an `id` QEMU echoes and settles each reply by its id, with
 * a timeout; asynchronous events go to listeners; everything pending is rejected when the socket closes.
 *
 * Our own rather than an npm package: the QMP clients on npm are a 2015 single-commit callback library
 * (`qemu-qmp`) and a new one-person project (`node-qemu`); the job is line framing, id-matched promises
 * and timeouts, and the driver needs full control over those timeouts for re-adoption (a monitor serves
 * one client at a time: a second connection gets no greeting until the first closes).
 */
import { EventEmitter } from 'node:events';
import net from 'node:net';

/** A QMP `{"error": {class, desc}}` reply. */
export class QmpError extends Error {
  override readonly name = 'QmpError';
  constructor(
    readonly command: string,
    readonly errorClass: string,
    readonly desc: string
  ) {
    super(`QMP ${command} failed: ${errorClass}: ${desc}`);
  }
}

/** The monitor did not answer in time, or the connection is gone. */
export class QmpUnavailable extends Error {
  override readonly name = 'QmpUnavailable';
}

export interface QmpEvent {
  event: string;
  data?: Record<string, unknown>;
  timestamp?: { seconds: number; microseconds: number };
}

export interface QmpConnectOptions {
  /** Ms to wait for the connection and the greeting (a busy monitor sends none). Default 3000. */
  greetingTimeoutMs?: number;
  /** Default ms a command may take before its promise rejects. Default 10000. */
  commandTimeoutMs?: number;
}

interface Pending {
  command: string;
  resolve: (value: unknown) => void;
  reject: (err: Error) => void;
  timer: NodeJS.Timeout;
}

export class QmpClient {
  private readonly events = new EventEmitter();
  private readonly pending = new Map<string, Pending>();
  private nextId = 1;
  private buffer = '';
  private closedError: Error | undefined;
  /** Settles once the socket is closed. */
  readonly closed: Promise<void>;

  private constructor(
    private readonly socket: net.Socket,
    readonly path: string,
    private readonly commandTimeoutMs: number
  ) {
    let markClosed: () => void = () => undefined;
    this.closed = new Promise<void>((resolve) => (markClosed = resolve));
    socket.on('close', () => {
      this.closedError ??= new QmpUnavailable(`QMP connection to ${path} closed`);
      for (const [id, p] of this.pending) {
        clearTimeout(p.timer);
        p.reject(new QmpUnavailable(`QMP ${p.command}: connection to ${path} closed before the reply`));
        this.pending.delete(id);
      }
      this.events.emit('close');
      markClosed();
    });
    socket.on('error', (err) => {
      this.closedError ??= new QmpUnavailable(`QMP connection to ${path}: ${err.message}`);
    });
  }

  /** Connects, reads the greeting and negotiates capabilities. QmpUnavailable when the monitor does not answer. */
  static async connect(path: string, options: QmpConnectOptions = {}): Promise<QmpClient> {
    const greetingTimeoutMs = options.greetingTimeoutMs ?? 3000;
    const socket = net.createConnection({ path });
    const client = new QmpClient(socket, path, options.commandTimeoutMs ?? 10_000);
    try {
      await client.handshake(greetingTimeoutMs);
      return client;
    } catch (err) {
      socket.destroy();
      throw err instanceof QmpError || err instanceof QmpUnavailable
        ? err
        : new QmpUnavailable(`QMP connect to ${path}: ${(err as Error).message}`);
    }
  }

  private handshake(timeoutMs: number): Promise<void> {
    return new Promise<void>((resolve, reject) => {
      const timer = setTimeout(() => {
        reject(new QmpUnavailable(`QMP ${this.path}: no greeting within ${timeoutMs} ms (monitor busy or dead)`));
      }, timeoutMs);
      const fail = (err: Error): void => {
        clearTimeout(timer);
        reject(err);
      };
      this.socket.once('error', fail);
      this.socket.once('close', () => fail(new QmpUnavailable(`QMP ${this.path}: closed before the greeting`)));
      let greeted = false;
      this.socket.setEncoding('utf8');
      this.socket.on('data', (chunk: string) => {
        this.buffer += chunk;
        let nl: number;
        while ((nl = this.buffer.indexOf('\n')) >= 0) {
          const line = this.buffer.slice(0, nl).trim();
          this.buffer = this.buffer.slice(nl + 1);
          if (!line) continue;
          let message: Record<string, unknown>;
          try {
            message = JSON.parse(line) as Record<string, unknown>;
          } catch {
            continue;
          }
          if (!greeted && 'QMP' in message) {
            greeted = true;
            this.execute('qmp_capabilities', undefined, timeoutMs).then(() => {
              clearTimeout(timer);
              this.socket.off('error', fail);
              resolve();
            }, fail);
            continue;
          }
          this.dispatch(message);
        }
      });
    });
  }

  private dispatch(message: Record<string, unknown>): void {
    if (typeof message.event === 'string') {
      this.events.emit('event', message);
      return;
    }
    const id = typeof message.id === 'string' ? message.id : undefined;
    const p = id === undefined ? undefined : this.pending.get(id);
    if (!p || id === undefined) return;
    this.pending.delete(id);
    clearTimeout(p.timer);
    if ('error' in message) {
      const e = (message.error ?? {}) as { class?: string; desc?: string };
      p.reject(new QmpError(p.command, e.class ?? 'GenericError', e.desc ?? 'unknown error'));
    } else p.resolve(message.return);
  }

  /** Runs a command; resolves with its `return` value. QmpError on an error reply, QmpUnavailable on timeout. */
  execute<T = unknown>(command: string, args?: Record<string, unknown>, timeoutMs?: number): Promise<T> {
    if (this.closedError) return Promise.reject(this.closedError);
    const id = `c${this.nextId++}`;
    const ms = timeoutMs ?? this.commandTimeoutMs;
    return new Promise<T>((resolve, reject) => {
      const timer = setTimeout(() => {
        this.pending.delete(id);
        reject(new QmpUnavailable(`QMP ${command} on ${this.path}: no reply within ${ms} ms`));
      }, ms);
      this.pending.set(id, { command, resolve: resolve as (v: unknown) => void, reject, timer });
      this.socket.write(`${JSON.stringify({ execute: command, ...(args ? { arguments: args } : {}), id })}\n`);
    });
  }

  /** Calls `listener` for every event until the returned function is called. */
  onEvent(listener: (event: QmpEvent) => void): () => void {
    this.events.on('event', listener);
    return () => this.events.off('event', listener);
  }

  /** The next event named `name` (matching `filter`), or QmpUnavailable after `timeoutMs` or on close. */
  waitForEvent(name: string, timeoutMs: number, filter?: (event: QmpEvent) => boolean): Promise<QmpEvent> {
    return new Promise<QmpEvent>((resolve, reject) => {
      const done = (): void => {
        clearTimeout(timer);
        off();
        this.events.off('close', onClose);
      };
      const timer = setTimeout(() => {
        done();
        reject(new QmpUnavailable(`QMP ${this.path}: no ${name} event within ${timeoutMs} ms`));
      }, timeoutMs);
      const onClose = (): void => {
        done();
        reject(new QmpUnavailable(`QMP ${this.path}: closed while waiting for ${name}`));
      };
      this.events.once('close', onClose);
      const off = this.onEvent((event) => {
        if (event.event !== name || (filter && !filter(event))) return;
        done();
        resolve(event);
      });
    });
  }

  get isOpen(): boolean {
    return this.closedError === undefined;
  }

  /** Closes the connection (QEMU serves the next client). */
  async close(): Promise<void> {
    if (this.socket.destroyed) return;
    this.socket.end();
    const timer = setTimeout(() => this.socket.destroy(), 500);
    await this.closed;
    clearTimeout(timer);
  }
}
