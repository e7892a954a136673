import { Option, type Command } from 'commander';
import { parseDuration } from '../../config.js';
import { EVENT_TYPES, type EventType } from '../../domain/events.js';
import { newId } from '../../domain/ids.js';
import type { WebhookEndpoint } from '../../domain/webhook-endpoint.js';
import { checkOutboundUrl } from '../../net/outbound-request.js';
import { keys } from '../../store/repositories.js';
import { UNCHANGED } from '../../store/table-repository.js';
import { AdminError, describeScope, parseEventTypes, scopeOf, scopeOption, type CommandContext } from '../cli-support.js';

export function registerWebhookCommands(program: Command, context: CommandContext): void {
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
      const d = await context.deps();
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
      context.io.out(
        `Webhook endpoint ${endpoint.id} receives ${endpoint.eventTypes.length === 0 ? 'every event type' : endpoint.eventTypes.join(', ')} for ${describeScope(endpoint.customerScope)}.\n` +
          `Signing secret (verify with any Standard Webhooks library):\n\n  ${secret}\n\nStore it now: it is not shown again. Running instances start delivering within 30 seconds.`,
      );
    });
  webhooksCommand
    .command('list')
    .description('List webhook endpoints')
    .option('--json', 'print JSON')
    .action(async (options: { json?: boolean }) => {
      const d = await context.deps();
      const items = await d.repositories.webhookEndpoints.all(keys.webhookEndpointsPartition);
      context.print(items, options.json, () =>
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
      const d = await context.deps();
      const grace = parseDuration(options.grace);
      if (grace === undefined) throw new AdminError(`--grace: "${options.grace}" is not a duration such as 24h or 30m.`);
      if (!(await d.repositories.webhookEndpoints.get(keys.webhookEndpoint(id)))) throw new AdminError(`No webhook endpoint ${id}.`);
      const rotated = await d.webhookSecrets.rotateEndpointSecret(id, { gracePeriodMs: grace });
      context.io.out(
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
        const d = await context.deps();
        const updated = await d.repositories.webhookEndpoints.update(keys.webhookEndpoint(id), (current) => (current ? { ...current, enabled } : UNCHANGED));
        if (!updated) throw new AdminError(`No webhook endpoint ${id}.`);
        context.io.out(`Webhook endpoint ${id} is ${enabled ? 'enabled' : 'disabled'}.`);
      });
  }
  webhooksCommand
    .command('remove')
    .description('Remove an endpoint and its signing secret; its pending deliveries fail')
    .argument('<id>', 'the endpoint id')
    .action(async (id: string) => {
      const d = await context.deps();
      if (!(await d.repositories.webhookEndpoints.delete(keys.webhookEndpoint(id)))) throw new AdminError(`No webhook endpoint ${id}.`);
      await d.webhookSecrets.deleteEndpointSecret(id);
      context.io.out(`Webhook endpoint ${id} removed.`);
    });
}
