import { InvalidArgumentError, Option } from 'commander';
import type { PasswordSignInDeps } from '../connect/password-sign-in.js';
import type { CheckOptions } from '../connectivity/check-connection.js';
import type { CustomerScope } from '../domain/access.js';
import type { Connection } from '../domain/connection.js';
import type { ConnectionCheck } from '../domain/connection-check.js';
import { customerIdSchema } from '../domain/customer.js';
import { EVENT_TYPES, type EventType } from '../domain/events.js';
import { ID_PATTERN } from '../domain/ids.js';
import type { ReplayDeps } from '../events/replay-events.js';
import type { WebhookSecrets } from '../events/webhook-secrets.js';
import type { Repositories } from '../store/repositories.js';

/** What every admin command works with, and the small helpers they share. */

export interface AdminDeps {
  repositories: Repositories;
  webhookSecrets: Pick<WebhookSecrets, 'createEndpointSecret' | 'rotateEndpointSecret' | 'deleteEndpointSecret'>;
  replay: ReplayDeps;
  allowPrivateNetworkUrls: boolean;
  now(): Date;
  /** Signing in to delegated connections; absent when no app registration is configured (ENTRA_CLIENT_ID). */
  connect?: ConnectCommandDeps;
  /** The connectivity checker; absent when no app registration is configured. */
  checkConnection?: (connection: Connection, options: CheckOptions) => Promise<ConnectionCheck>;
}

export interface ConnectCommandDeps {
  /** The connect flow's pieces, and ALLOW_ROPC from the configuration. */
  signIn: PasswordSignInDeps;
  /** The user's password for `connect --password`: never from the command line (see read-password.ts). */
  readPassword(): Promise<string>;
}

export interface CliOutput {
  out(text: string): void;
  err(text: string): void;
}

export interface CommandContext {
  /** The services, built on first use: --help and argument errors need none. */
  deps(): Promise<AdminDeps>;
  io: CliOutput;
  /** JSON with --json, the lines otherwise. */
  print(value: unknown, json: boolean | undefined, lines: () => string[]): void;
}

/** A failure the CLI reports as one line and exit code 1, without a stack trace. */
export class AdminError extends Error {}

export function scopeOption(): Option {
  return new Option('--customer <id>', 'only this customer').argParser(parseCustomerId);
}

export function scopeOf(options: { customer?: string; all?: boolean }): CustomerScope {
  if (options.all) return '*';
  if (options.customer !== undefined) return options.customer;
  throw new AdminError('Say whom it is for: --customer <id>, or --all.');
}

export function describeScope(scope: CustomerScope): string {
  return scope === '*' ? 'all customers' : `customer ${scope}`;
}

export function parseCustomerId(value: string): string {
  const parsed = customerIdSchema.safeParse(value);
  if (!parsed.success) throw new InvalidArgumentError(parsed.error.issues[0]?.message ?? 'not a customer id');
  return parsed.data;
}

export function parseConnectionId(value: string): string {
  if (!ID_PATTERN.con.test(value)) throw new InvalidArgumentError('connection ids look like con_01J…, 30 characters');
  return value;
}

export function parseEventTypes(value: string): EventType[] {
  const types = value.split(',').map((t) => t.trim()).filter((t) => t !== '');
  const unknown = types.filter((t) => !(EVENT_TYPES as readonly string[]).includes(t));
  if (unknown.length > 0) throw new InvalidArgumentError(`unknown event type(s): ${unknown.join(', ')}; known: ${EVENT_TYPES.join(', ')}`);
  return types as EventType[];
}
