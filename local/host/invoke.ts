import { randomBytes, randomUUID } from 'node:crypto';
import type { FunctionRegistry, RegisteredFunction } from './core-api.js';
import type {
  CoreInvocationContext,
  InvocationState,
  RpcInvocationRequest,
  RpcInvocationResponse,
  RpcLogCategory,
  RpcLogLevel,
} from './core-types.js';

/**
 * Runs one invocation the way the Node.js worker does: the programming model turns the RPC
 * request into the handler's arguments, pre-invocation hooks run, the handler runs,
 * post-invocation hooks run, and the programming model turns the result into an RPC response.
 * A handler error is rethrown after the post-invocation hooks, as in the worker.
 */

export interface InvocationLogEntry {
  functionName: string;
  invocationId: string;
  level: RpcLogLevel;
  category: RpcLogCategory;
  message: string;
}

export type InvocationLogger = (entry: InvocationLogEntry) => void;

export async function invoke(
  registry: FunctionRegistry,
  fn: RegisteredFunction,
  request: Omit<RpcInvocationRequest, 'invocationId' | 'functionId'>,
  log: InvocationLogger,
  invocationId: string = randomUUID(),
): Promise<RpcInvocationResponse> {
  const model = registry.programmingModel;
  if (!model) throw new Error('No programming model registered: does the app import @azure/functions?');
  const functionName = fn.metadata.name;
  // The context exists only once the programming model made it; log hooks see it (and the invocation's hookData) from then on.
  const made: { invocation?: { hookData: Record<string, unknown>; invocationContext: unknown } } = {};
  const coreContext: CoreInvocationContext = {
    invocationId,
    // As the Functions host: every invocation runs in a W3C trace of its own, unless the caller gave one.
    request: { traceContext: { traceParent: newTraceParent(), traceState: '', attributes: {} }, ...request, invocationId, functionId: fn.metadata.functionId ?? functionName },
    metadata: fn.metadata,
    log: (level, category, message) => {
      log({ functionName, invocationId, ...registry.runLogHooks({ level, category, message }, made.invocation) });
    },
  };
  const setState = (state: InvocationState | undefined) => {
    if (state) coreContext.state = state;
    else delete coreContext.state;
  };

  const invocationModel = await model.getInvocationModel(coreContext);
  const { context, inputs: initialInputs } = await invocationModel.getArguments();
  const hookData: Record<string, unknown> = {};
  made.invocation = { hookData, invocationContext: context };
  const pre = {
    hookData,
    appHookData: registry.appHookData,
    invocationContext: context,
    functionCallback: fn.callback,
    inputs: initialInputs,
  };
  setState('preInvocationHooks');
  try {
    await registry.runHooks('preInvocation', pre);
  } finally {
    setState(undefined);
  }

  const post: { hookData: unknown; appHookData: unknown; invocationContext: unknown; inputs: unknown[]; result: unknown; error: unknown } = {
    hookData,
    appHookData: registry.appHookData,
    invocationContext: context,
    inputs: pre.inputs,
    result: null,
    error: null,
  };
  setState('invocation');
  try {
    post.result = await invocationModel.invokeFunction(context, pre.inputs, pre.functionCallback);
  } catch (error: unknown) {
    post.error = error;
  } finally {
    setState(undefined);
  }

  setState('postInvocationHooks');
  try {
    await registry.runHooks('postInvocation', post);
  } finally {
    setState(undefined);
  }

  // As the worker does: the outcome is post.error after the hooks, which may have set or cleared
  // it; null and undefined mean success.
  if (post.error !== null && post.error !== undefined) rethrow(post.error);
  return invocationModel.getResponse(context, post.result);
}

/** A W3C traceparent: version 00, a random trace id and parent span id, sampled. */
function newTraceParent(): string {
  return `00-${randomBytes(16).toString('hex')}-${randomBytes(8).toString('hex')}-01`;
}

function rethrow(error: unknown): never {
  throw error;
}
