import { Option, type Command } from 'commander';
import { generateApiKey } from '../../api/auth/api-keys.js';
import { keys } from '../../store/repositories.js';
import { UNCHANGED } from '../../store/table-repository.js';
import { AdminError, describeScope, scopeOf, scopeOption, type CommandContext } from '../cli-support.js';

export function registerKeyCommands(program: Command, context: CommandContext): void {
  const keysCommand = program.command('keys').description('API keys for the vendor API');
  keysCommand
    .command('create')
    .description('Make an API key; it is shown once and stored only as a hash')
    .addOption(scopeOption())
    .addOption(new Option('--all', 'the key may act for every customer').conflicts('customer'))
    .option('--name <label>', 'what the key is for, shown in listings')
    .action(async (options: { customer?: string; all?: boolean; name?: string }) => {
      const d = await context.deps();
      const { key, record } = generateApiKey(scopeOf(options), options.name, d.now());
      await d.repositories.apiKeys.create(keys.apiKey(record.prefix), record);
      context.io.out(`API key ${record.prefix} for ${describeScope(record.customerScope)}:\n\n  ${key}\n\nStore it now: it is not shown again.`);
    });
  keysCommand
    .command('list')
    .description('List API keys (prefixes, never the keys)')
    .option('--customer <id>', 'only keys for this customer')
    .option('--json', 'print JSON')
    .action(async (options: { customer?: string; json?: boolean }) => {
      const d = await context.deps();
      const items = (await d.repositories.apiKeys.all(keys.apiKeysPartition))
        .filter((k) => options.customer === undefined || k.customerScope === options.customer);
      context.print(items, options.json, () =>
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
      const d = await context.deps();
      const revokedAt = d.now().toISOString();
      const updated = await d.repositories.apiKeys.update(keys.apiKey(prefix), (current) =>
        current && current.revokedAt === undefined ? { ...current, revokedAt } : UNCHANGED,
      );
      if (!updated) throw new AdminError(`No API key with prefix ${prefix}.`);
      context.io.out(`API key ${prefix} is revoked.`);
    });
}
