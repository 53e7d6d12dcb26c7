/**
 * The workflows' interceptor, the mirror of the activities' (src/workers/interceptors.ts): a domain
 * error (src/domain/errors) thrown by a workflow function, a signal handler, an Update handler or its
 * validator crosses the wire as its typed failure (toWireFailure: type = the error's name, message and
 * details kept), not as a plain Error, which would fail the workflow task (retried forever) instead of
 * the workflow. Bundled with every workflow (src/workers/workflow-bundle.ts, WORKFLOW_INTERCEPTOR_MODULES).
 * It changes no command: it only types what is thrown.
 */
import type {
  Next,
  SignalInput,
  UpdateInput,
  WorkflowExecuteInput,
  WorkflowInboundCallsInterceptor,
  WorkflowInterceptorsFactory,
} from '@temporalio/workflow';

import { toWireFailure } from './failures';

type NextCall<M extends keyof WorkflowInboundCallsInterceptor> = Next<WorkflowInboundCallsInterceptor, M>;

export class DomainErrorWorkflowInterceptor implements WorkflowInboundCallsInterceptor {
  execute(input: WorkflowExecuteInput, next: NextCall<'execute'>): Promise<unknown> {
    return next(input).catch(rethrowTyped);
  }

  handleSignal(input: SignalInput, next: NextCall<'handleSignal'>): Promise<void> {
    return next(input).catch(rethrowTyped);
  }

  handleUpdate(input: UpdateInput, next: NextCall<'handleUpdate'>): Promise<unknown> {
    return next(input).catch(rethrowTyped);
  }

  validateUpdate(input: UpdateInput, next: NextCall<'validateUpdate'>): void {
    try {
      next(input);
    } catch (err) {
      rethrowTyped(err);
    }
  }
}

function rethrowTyped(err: unknown): never {
  throw toWireFailure(err);
}

export const interceptors: WorkflowInterceptorsFactory = () => ({ inbound: [new DomainErrorWorkflowInterceptor()] });
