import Module from 'node:module';
import type {
  FunctionCallback,
  FunctionMetadata,
  HookCallback,
  HookName,
  ProgrammingModel,
  RpcBindingInfo,
  RpcLogCategory,
  RpcLogLevel,
} from './core-types.js';

/**
 * A stand-in for `@azure/functions-core`, the module the Azure Functions Node.js worker provides
 * at run time. `@azure/functions` registers every `app.http(...)`, `app.timer(...)`,
 * `app.storageQueue(...)` and hook through it; capturing those calls is how the local host (and
 * the registration test) learn the app's functions from the very code Azure runs.
 */

export interface RegisteredFunction {
  metadata: FunctionMetadata;
  callback: FunctionCallback;
  /** The entry file that registered it. */
  entryPoint: string | undefined;
}

export type CoreLog = (level: RpcLogLevel, category: RpcLogCategory, message: string) => void;

export interface LogLine {
  level: RpcLogLevel;
  category: RpcLogCategory;
  message: string;
}

class Disposable {
  #callOnDispose: (() => unknown) | undefined;

  constructor(callOnDispose: () => unknown) {
    this.#callOnDispose = callOnDispose;
  }

  dispose(): unknown {
    const call = this.#callOnDispose;
    this.#callOnDispose = undefined;
    return call?.();
  }
}

export class FunctionRegistry {
  readonly functions = new Map<string, RegisteredFunction>();
  readonly hooks = new Map<HookName, HookCallback[]>();
  /** Shared by every hook of the app, as the worker's appHookData. */
  readonly appHookData: Record<string, unknown> = {};
  programmingModel: ProgrammingModel | undefined;
  /** Set while an entry file loads, so registrations can name their file. */
  currentEntryPoint: string | undefined;
  #locked = false;

  constructor(private readonly log: CoreLog) {}

  /** After start-up, as in the worker, no function can be added or removed. */
  lock(): void {
    this.#locked = true;
  }

  readonly api = {
    version: '3.12.0-local',
    hostVersion: '4.1040.0-local',
    Disposable,
    registerFunction: (metadata: FunctionMetadata, callback: FunctionCallback): Disposable => {
      if (this.#locked) throw new Error('A function can only be registered during app startup.');
      const id = metadata.functionId ?? metadata.name;
      if (this.functions.has(id)) throw new Error(`A function with id "${id}" has already been registered.`);
      this.functions.set(id, { metadata, callback, entryPoint: this.currentEntryPoint });
      return new Disposable(() => {
        if (this.#locked) throw new Error('A function can only be disposed during app startup.');
        this.functions.delete(id);
      });
    },
    registerHook: (name: string, callback: HookCallback): Disposable => {
      if (!isHookName(name)) {
        // The worker's answer to a hook it does not know; @azure/functions turns it into a clear message.
        throw Object.assign(new RangeError(`Unrecognized hook "${name}"`), { isAzureFunctionsSystemError: true });
      }
      const list = this.hooks.get(name) ?? [];
      list.push(callback);
      this.hooks.set(name, list);
      return new Disposable(() => {
        const index = list.indexOf(callback);
        if (index >= 0) list.splice(index, 1);
      });
    },
    setProgrammingModel: (model: ProgrammingModel): void => {
      this.programmingModel = model;
    },
    getProgrammingModel: (): ProgrammingModel | undefined => this.programmingModel,
    log: (level: RpcLogLevel, category: RpcLogCategory, message: string): void => {
      const line = this.runLogHooks({ level, category, message });
      this.log(line.level, line.category, line.message);
    },
  };

  async runHooks(name: HookName, context: Record<string, unknown>): Promise<void> {
    for (const hook of [...(this.hooks.get(name) ?? [])]) await hook(context);
  }

  /**
   * Runs the log hooks on a line and returns the line to write, as the worker does: synchronously,
   * so a line is written once every hook has seen it; hooks may change the level and message of
   * the functions' own (user) lines, system lines are written as they were; a hook that throws
   * stops the hooks after it and the line is written anyway. Within an invocation the hooks get its
   * context and the hookData its pre- and post-invocation hooks share.
   */
  runLogHooks(line: LogLine, invocation?: { hookData: Record<string, unknown>; invocationContext: unknown }): LogLine {
    const context = { hookData: invocation?.hookData ?? {}, appHookData: this.appHookData, invocationContext: invocation?.invocationContext, ...line };
    try {
      for (const hook of [...(this.hooks.get('log') ?? [])]) void hook(context);
    } catch {
      // Ignored, as in the worker: a hook cannot keep a line from being written.
    }
    return line.category === 'user' ? { ...line, level: context.level, message: context.message } : line;
  }

  /** The trigger binding of a function: exactly one binding whose type ends in "Trigger". */
  static triggerOf(metadata: FunctionMetadata): { name: string; binding: RpcBindingInfo } {
    const triggers = Object.entries(metadata.bindings).filter(
      ([, b]) => typeof b.type === 'string' && b.type.toLowerCase().endsWith('trigger') && b.direction === 'in',
    );
    const first = triggers[0];
    if (triggers.length !== 1 || !first) {
      throw new Error(`Function "${metadata.name}" must have exactly one trigger binding (found ${triggers.length}).`);
    }
    return { name: first[0], binding: first[1] };
  }
}

function isHookName(name: string): name is HookName {
  return ['appStart', 'appTerminate', 'preInvocation', 'postInvocation', 'log'].includes(name);
}

const CORE_MODULE = '@azure/functions-core';
let installed: FunctionRegistry | undefined;

/**
 * Serves `require('@azure/functions-core')` from `registry`, the way the worker does (it proxies
 * Module.prototype.require). One registry per process: the programming model caches the module
 * the first time it asks for it.
 */
export function installCoreApi(log: CoreLog): FunctionRegistry {
  if (installed) throw new Error('The @azure/functions-core stand-in is already installed in this process.');
  const registry = new FunctionRegistry(log);
  const prototype = Module.prototype as unknown as { require: (id: string) => unknown };
  prototype.require = new Proxy(prototype.require, {
    apply(target, thisArg, args: unknown[]) {
      if (args[0] === CORE_MODULE) return registry.api;
      return Reflect.apply(target, thisArg, args) as unknown;
    },
  });
  installed = registry;
  return registry;
}
