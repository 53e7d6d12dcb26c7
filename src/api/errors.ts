/**
 * Nova's fault envelope: `{"itemNotFound": {"code": 404, "message": "…"}}`, and the mapping of the
 * conductor's typed failures (and zod failures at the edge) to it. Keystone's own shape for identity.
 */
import { FailureType } from '../domain/errors';

export const FAULT_NAMES = {
  400: 'badRequest',
  401: 'unauthorized',
  403: 'forbidden',
  404: 'itemNotFound',
  405: 'HTTPMethodNotAllowed',
  406: 'HTTPNotAcceptable',
  409: 'conflictingRequest',
  413: 'overLimit',
  500: 'computeFault',
  501: 'notImplemented',
} as const;
export type FaultCode = keyof typeof FAULT_NAMES;

/** An answer in Nova's fault envelope; thrown by handlers, rendered by the app's error handler. */
export class ApiFault extends Error {
  constructor(
    readonly code: FaultCode,
    message: string
  ) {
    super(message);
  }

  body(): Record<string, { code: number; message: string }> {
    return { [FAULT_NAMES[this.code]]: { code: this.code, message: this.message } };
  }
}

export const badRequest = (message: string) => new ApiFault(400, message);
export const forbidden = (message = 'Policy does not allow this operation to be performed.') =>
  new ApiFault(403, message);
export const notFound = (message: string) => new ApiFault(404, message);
export const conflict = (message: string) => new ApiFault(409, message);
export const notImplemented = (message: string) => new ApiFault(501, message);

/** Keystone's error shape (identity routes): `{"error": {"code", "message", "title"}}`. */
export class IdentityFault extends Error {
  constructor(
    readonly code: 400 | 401 | 403 | 404,
    message: string
  ) {
    super(message);
  }

  body(): { error: { code: number; message: string; title: string } } {
    const title = { 400: 'Bad Request', 401: 'Unauthorized', 403: 'Forbidden', 404: 'Not Found' }[this.code];
    return { error: { code: this.code, message: this.message, title } };
  }
}

/** The HTTP answer for a conductor workflow's typed failure (its type and message as they crossed the wire). */
export function faultOfFailure(type: string, message: string): ApiFault {
  switch (type) {
    case FailureType.InvalidRequest:
    case FailureType.ComputeServiceInUse:
    case FailureType.MigrationPreCheckError:
    case FailureType.InvalidMigrationState:
      return badRequest(message);
    case FailureType.InstanceNotFound:
    case FailureType.ServerGroupNotFound:
      return notFound(message);
    case FailureType.InstanceInvalidState:
    case FailureType.ServerGroupInUse:
    case FailureType.ConcurrentUpdate:
    case FailureType.MigrationError:
      return conflict(message);
    case FailureType.NoValidHost:
    case FailureType.MaxRetriesExceeded:
      // NOTE(nova): Nova answers 202 and the build ends ERROR; here it is reached only when the request
      // fails before the accept handshake completed (a request no host can ever take).
      return badRequest(message);
    default:
      return new ApiFault(500, `${type}: ${message}`);
  }
}
