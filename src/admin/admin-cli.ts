import { Command, InvalidArgumentError, Option } from 'commander';
import { generateApiKey } from '../api/auth/api-keys.js';
import { fetchKeySet } from '../api/auth/issuer-key-set.js';
import type { CustomerScope } from '../domain/access.js';
import { customerIdSchema, type Customer } from '../domain/customer.js';
import { EVENT_TYPES, type EventType } from '../domain/events.js';
import { newId } from '../domain/ids.js';
import type { WebhookEndpoint } from '../domain/webhook-endpoint.js';
import { replayEvent, replayFailedEvents, type ReplayDeps } from '../events/replay-events.js';
import type { WebhookSecrets } from '../events/webhook-secrets.js';
import { checkOutboundUrl, OutboundRequestError } from '../net/outbound-request.js';
import { keys, type Repositories } from '../store/repositories.js';
import { AlreadyExistsError, UNCHANGED } from '../store/table-repository.js';
import { parseDuration } from '../config.js';

/**
 * The admin CLI (`npm run connector -- …`): API keys, customers, token issuers, webhook endpoints
 * and event replay, against the same storage and secret store as the functions. Secrets it makes
 * (API keys, webhook signing secrets) are printed once and stored only as hashes or in the
 * secret store.
 */

export interface AdminDeps {
  repositories: Repositories;
  webhookSecrets: Pick<WebhookSecrets, 'createEndpointSecret' | 'rotateEndpointSecret' | 'deleteEndpointSecret'>;
  replay: ReplayDeps;
  allowPrivateNetworkUrls: boolean;
  now(): Date;
}

export interface CliOutput {
  out(text: string): void;
  err(text: string): void;
}

/** A failure the CLI reports as one line and exit code 1, without a stack trace. */
export class AdminError extends Error {}

export function buildAdminCli(deps: () => Promise<AdminDeps>, io: CliOutput): Command {
  const program = new Command('connector')
    .description('Administer m365-connector: API keys, customers, token issuers, webhook endpoints, events.')
    .configureOutput({ writeOut: (text) => { io.out(text.replace(/\n$/, '')); }, writeErr: (text) => { io.err(text.replace(/\n$/, '')); } })
    .exitOverride()
    .showHelpAfterError();
  const print = (value: unknown, json: boolean | undefined, lines: () => string[]) => {
    io.out(json ? JSON.stringify(value, null, 2) : lines().join('\n'));
  };

  const keysCommand = program.command('keys').description('API keys for the vendor API');
  keysCommand
    .command('create')
    .description('Make an API key; it is shown once and stored only as a hash')
    .addOption(scopeOption())
    .addOption(new Option('--all', 'the key may act for every customer').conflicts('customer'))
    .option('--name <label>', 'what the key is for, shown in listings')
    .action(async (options: { customer?: string; all?: boolean; name?: string }) => {
      const d = await deps();
      const { key, record } = generateApiKey(scopeOf(options), options.name, d.now());
      await d.repositories.apiKeys.create(keys.apiKey(record.prefix), record);
      io.out(`API key ${record.prefix} for ${describeScope(record.customerScope)}:\n\n  ${key}\n\nStore it now: it is not shown again.`);
    });
  keysCommand
    .command('list')
    .description('List API keys (prefixes, never the keys)')
    .option('--customer <id>', 'only keys for this customer')
    .option('--json', 'print JSON')
    .action(async (options: { customer?: string; json?: boolean }) => {
      const d = await deps();
      const items = (await d.repositories.apiKeys.all(keys.apiKeysPartition))
        .filter((k) => options.customer === undefined || k.customerScope === options.customer);
      print(items, options.json, () =>
        items.length === 0
          ? ['No API keys.']
          : items.map((k) => `${k.prefix}  ${describeScope(k.customerScope).padEnd(24)}  created ${k.createdAt}${k.revokedAt ? `  REVOKED ${k.revokedAt}` : ''}${k.name ? `  ${k.name}` : ''}`),
      );
    });
  keysCommand
    .command('revoke')
    .description('Revoke an API key at once (running instances notice within 30 seconds)')
    .argument('<prefix>', 'the key prefix, as keys list shows it')
    .action(async (prefix: string) => {
      const d = await deps();
      const revokedAt = d.now().toISOString();
      const updated = await d.repositories.apiKeys.update(keys.apiKey(prefix), (current) =>
        current && current.revokedAt === undefined ? { ...current, revokedAt } : UNCHANGED,
      );
      if (!updated) throw new AdminError(`No API key with prefix ${prefix}.`);
      io.out(`API key ${prefix} is revoked.`);
    });

  const customersCommand = program.command('customers').description('Customers of the vendor, under the vendor\'s own ids');
  customersCommand
    .command('create')
    .description('Create a customer (the API can do this too: PUT /api/v1/customers/{id})')
    .argument('<id>', 'your id for the customer', parseCustomerId)
    .option('--name <displayName>', 'display name')
    .action(async (id: string, options: { name?: string }) => {
      const d = await deps();
      const at = d.now().toISOString();
      const customer: Customer = { id, tags: {}, createdAt: at, updatedAt: at, ...(options.name !== undefined && { displayName: options.name }) };
      try {
        await d.repositories.customers.create(keys.customer(id), customer);
      } catch (error) {
        if (error instanceof AlreadyExistsError) throw new AdminError(`Customer ${id} already exists.`);
        throw error;
      }
      io.out(`Customer ${id} created.`);
    });
  customersCommand
    .command('list')
    .description('List customers')
    .option('--json', 'print JSON')
    .action(async (options: { json?: boolean }) => {
      const d = await deps();
      const items = await d.repositories.customers.all(keys.customersPartition);
      print(items, options.json, () => (items.length === 0 ? ['No customers.'] : items.map((c) => `${c.id}${c.displayName ? `  ${c.displayName}` : ''}`)));
    });
  customersCommand
    .command('show')
    .description('Show a customer and its connections')
    .argument('<id>', 'the customer id', parseCustomerId)
    .option('--json', 'print JSON')
    .action(async (id: string, options: { json?: boolean }) => {
      const d = await deps();
      const customer = await d.repositories.customers.get(keys.customer(id));
      if (!customer) throw new AdminError(`No customer ${id}.`);
      const connections = await d.repositories.connections.all(id);
      print({ customer: customer.value, connections }, options.json, () => [
        `${customer.value.id}${customer.value.displayName ? `  ${customer.value.displayName}` : ''}  created ${customer.value.createdAt}`,
        ...(connections.length === 0 ? ['  no connections'] : connections.map((c) => `  ${c.id}  ${c.mode.padEnd(11)}  ${c.state}`)),
      ]);
    });

  const issuersCommand = program.command('issuers').description('Services of yours that sign JWTs for the API (Dynamics 365-style authentication settings)');
  issuersCommand
    .command('add')
    .description('Register a token issuer and the URL of its public keys (JWKS, a [{kid, publicKey, expiry}] list, or a PEM)')
    .requiredOption('--issuer <iss>', 'the iss claim of its tokens')
    .requiredOption('--key-url <url>', 'https URL of its public keys')
    .addOption(scopeOption())
    .addOption(new Option('--all', 'its tokens may name any customer in sub').conflicts('customer'))
    .option('--audience <aud>', 'require this aud claim')
    .action(async (options: { issuer: string; keyUrl: string; customer?: string; all?: boolean; audience?: string }) => {
      const d = await deps();
      try {
        checkOutboundUrl(options.keyUrl, d.allowPrivateNetworkUrls);
        const { keys: found } = await fetchKeySet(options.keyUrl, { allowPrivateNetwork: d.allowPrivateNetworkUrls });
        io.out(`The key URL answers with ${found.length} usable key(s): ${found.map((k) => k.kid ?? '(no kid)').join(', ')}.`);
      } catch (error) {
        const reason = error instanceof OutboundRequestError || error instanceof Error ? error.message : String(error);
        throw new AdminError(`The key URL cannot be used: ${reason}.`);
      }
      const issuer = {
        issuer: options.issuer,
        keyUrl: options.keyUrl,
        customerScope: scopeOf(options),
        createdAt: d.now().toISOString(),
        ...(options.audience !== undefined && { audience: options.audience }),
      };
      await d.repositories.jwtIssuers.update(keys.jwtIssuer(options.issuer), () => issuer);
      io.out(`Issuer ${options.issuer} registered for ${describeScope(issuer.customerScope)}.`);
    });
  issuersCommand
    .command('list')
    .description('List registered token issuers')
    .option('--json', 'print JSON')
    .action(async (options: { json?: boolean }) => {
      const d = await deps();
      const items = await d.repositories.jwtIssuers.all(keys.jwtIssuersPartition);
      print(items, options.json, () =>
        items.length === 0 ? ['No issuers.'] : items.map((i) => `${i.issuer}  ${describeScope(i.customerScope)}  ${i.keyUrl}${i.audience ? `  aud=${i.audience}` : ''}`),
      );
    });
  issuersCommand
    .command('remove')
    .description('Stop accepting an issuer\'s tokens (running instances notice within 30 seconds)')
    .argument('<iss>', 'the issuer')
    .action(async (issuer: string) => {
      const d = await deps();
      if (!(await d.repositories.jwtIssuers.delete(keys.jwtIssuer(issuer)))) throw new AdminError(`No issuer ${issuer}.`);
      io.out(`Issuer ${issuer} removed.`);
    });

  const webhooksCommand = program.command('webhooks').description('Your endpoints that receive events (Standard Webhooks signatures)');
  webhooksCommand
    .command('add')
    .description('Add an endpoint; its signing secret is shown once')
    .requiredOption('--url <url>', 'https URL that receives the events')
    .addOption(scopeOption())
    .addOption(new Option('--all', 'events of every customer').conflicts('customer'))
    .option('--events <types>', `comma-separated event types (default: all of ${EVENT_TYPES.join(', ')})`, parseEventTypes)
    .option('--description <text>', 'what the endpoint is')
    .action(async (options: { url: string; customer?: string; all?: boolean; events?: EventType[]; description?: string }) => {
      const d = await deps();
      try {
        checkOutboundUrl(options.url, d.allowPrivateNetworkUrls);
      } catch (error) {
        throw new AdminError(`The URL cannot be used: ${error instanceof Error ? error.message : String(error)}.`);
      }
      const endpoint: WebhookEndpoint = {
        id: newId('whk', d.now().getTime()),
        url: options.url,
        customerScope: scopeOf(options),
        eventTypes: options.events ?? [],
        enabled: true,
        createdAt: d.now().toISOString(),
        ...(options.description !== undefined && { description: options.description }),
      };
      const secret = await d.webhookSecrets.createEndpointSecret(endpoint.id);
      await d.repositories.webhookEndpoints.create(keys.webhookEndpoint(endpoint.id), endpoint);
      io.out(
        `Webhook endpoint ${endpoint.id} receives ${endpoint.eventTypes.length === 0 ? 'every event type' : endpoint.eventTypes.join(', ')} for ${describeScope(endpoint.customerScope)}.\n` +
          `Signing secret (verify with any Standard Webhooks library):\n\n  ${secret}\n\nStore it now: it is not shown again. Running instances start delivering within 30 seconds.`,
      );
    });
  webhooksCommand
    .command('list')
    .description('List webhook endpoints')
    .option('--json', 'print JSON')
    .action(async (options: { json?: boolean }) => {
      const d = await deps();
      const items = await d.repositories.webhookEndpoints.all(keys.webhookEndpointsPartition);
      print(items, options.json, () =>
        items.length === 0
          ? ['No webhook endpoints.']
          : items.map((e) => `${e.id}  ${e.enabled ? 'enabled ' : 'disabled'}  ${describeScope(e.customerScope).padEnd(24)}  ${e.url}  ${e.eventTypes.length === 0 ? 'all events' : e.eventTypes.join(',')}`),
      );
    });
  webhooksCommand
    .command('rotate-secret')
    .description('Make a new signing secret; the old one keeps signing for the grace period')
    .argument('<id>', 'the endpoint id')
    .option('--grace <duration>', 'how long the old secret keeps signing, e.g. 24h, 30m, 0s for a leaked secret', '24h')
    .action(async (id: string, options: { grace: string }) => {
      const d = await deps();
      const grace = parseDuration(options.grace);
      if (grace === undefined) throw new AdminError(`--grace: "${options.grace}" is not a duration such as 24h or 30m.`);
      if (!(await d.repositories.webhookEndpoints.get(keys.webhookEndpoint(id)))) throw new AdminError(`No webhook endpoint ${id}.`);
      const rotated = await d.webhookSecrets.rotateEndpointSecret(id, { gracePeriodMs: grace });
      io.out(
        `New signing secret for ${id}:\n\n  ${rotated.secret}\n\n` +
          (rotated.previousActiveUntil ? `The previous secret keeps signing until ${rotated.previousActiveUntil.toISOString()}.` : 'The previous secret no longer signs.'),
      );
    });
  for (const [name, enabled] of [['enable', true], ['disable', false]] as const) {
    webhooksCommand
      .command(name)
      .description(`${enabled ? 'Resume' : 'Pause'} deliveries to an endpoint`)
      .argument('<id>', 'the endpoint id')
      .action(async (id: string) => {
        const d = await deps();
        const updated = await d.repositories.webhookEndpoints.update(keys.webhookEndpoint(id), (current) => (current ? { ...current, enabled } : UNCHANGED));
        if (!updated) throw new AdminError(`No webhook endpoint ${id}.`);
        io.out(`Webhook endpoint ${id} is ${enabled ? 'enabled' : 'disabled'}.`);
      });
  }
  webhooksCommand
    .command('remove')
    .description('Remove an endpoint and its signing secret; its pending deliveries fail')
    .argument('<id>', 'the endpoint id')
    .action(async (id: string) => {
      const d = await deps();
      if (!(await d.repositories.webhookEndpoints.delete(keys.webhookEndpoint(id)))) throw new AdminError(`No webhook endpoint ${id}.`);
      await d.webhookSecrets.deleteEndpointSecret(id);
      io.out(`Webhook endpoint ${id} removed.`);
    });

  const eventsCommand = program.command('events').description('Events of a customer');
  eventsCommand
    .command('replay')
    .description('Deliver one event again, or every event since a time whose delivery failed')
    .requiredOption('--customer <id>', 'the customer', parseCustomerId)
    .addOption(new Option('--event <id>', 'the event to deliver again'))
    .addOption(new Option('--failed-since <time>', 'ISO time: every failed event since then').conflicts('event'))
    .action(async (options: { customer: string; event?: string; failedSince?: string }) => {
      const d = await deps();
      if (options.event !== undefined) {
        const queued = await replayEvent(d.replay, options.customer, options.event);
        io.out(`Event ${options.event} queued again for ${queued.length} endpoint(s), with the same webhook-id.`);
      } else if (options.failedSince !== undefined) {
        const since = new Date(options.failedSince);
        if (Number.isNaN(since.getTime())) throw new AdminError(`--failed-since: "${options.failedSince}" is not a time.`);
        const result = await replayFailedEvents(d.replay, options.customer, since);
        io.out(`${result.replayedEvents} of ${result.scannedEvents} event(s) since ${since.toISOString()} had failed deliveries; ${result.queued.length} queued again.`);
      } else {
        throw new AdminError('Name an event with --event <id>, or use --failed-since <time>.');
      }
    });

  return program;
}

function scopeOption(): Option {
  return new Option('--customer <id>', 'only this customer').argParser(parseCustomerId);
}

function scopeOf(options: { customer?: string; all?: boolean }): CustomerScope {
  if (options.all) return '*';
  if (options.customer !== undefined) return options.customer;
  throw new AdminError('Say whom it is for: --customer <id>, or --all.');
}

function describeScope(scope: CustomerScope): string {
  return scope === '*' ? 'all customers' : `customer ${scope}`;
}

function parseCustomerId(value: string): string {
  const parsed = customerIdSchema.safeParse(value);
  if (!parsed.success) throw new InvalidArgumentError(parsed.error.issues[0]?.message ?? 'not a customer id');
  return parsed.data;
}

function parseEventTypes(value: string): EventType[] {
  const types = value.split(',').map((t) => t.trim()).filter((t) => t !== '');
  const unknown = types.filter((t) => !(EVENT_TYPES as readonly string[]).includes(t));
  if (unknown.length > 0) throw new InvalidArgumentError(`unknown event type(s): ${unknown.join(', ')}; known: ${EVENT_TYPES.join(', ')}`);
  return types as EventType[];
}
