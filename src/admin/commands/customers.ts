import type { Command } from 'commander';
import type { Customer } from '../../domain/customer.js';
import { keys } from '../../store/repositories.js';
import { AlreadyExistsError } from '../../store/table-repository.js';
import { AdminError, parseCustomerId, type CommandContext } from '../cli-support.js';

export function registerCustomerCommands(program: Command, context: CommandContext): void {
  const customersCommand = program.command('customers').description('Customers of the vendor, under the vendor\'s own ids');
  customersCommand
    .command('create')
    .description('Create a customer (the API can do this too: PUT /api/v1/customers/{id})')
    .argument('<id>', 'your id for the customer', parseCustomerId)
    .option('--name <displayName>', 'display name')
    .action(async (id: string, options: { name?: string }) => {
      const d = await context.deps();
      const at = d.now().toISOString();
      const customer: Customer = { id, tags: {}, createdAt: at, updatedAt: at, ...(options.name !== undefined && { displayName: options.name }) };
      try {
        await d.repositories.customers.create(keys.customer(id), customer);
      } catch (error) {
        if (error instanceof AlreadyExistsError) throw new AdminError(`Customer ${id} already exists.`);
        throw error;
      }
      context.io.out(`Customer ${id} created.`);
    });
  customersCommand
    .command('list')
    .description('List customers')
    .option('--json', 'print JSON')
    .action(async (options: { json?: boolean }) => {
      const d = await context.deps();
      const items = await d.repositories.customers.all(keys.customersPartition);
      context.print(items, options.json, () => (items.length === 0 ? ['No customers.'] : items.map((c) => `${c.id}${c.displayName ? `  ${c.displayName}` : ''}`)));
    });
  customersCommand
    .command('show')
    .description('Show a customer and its connections')
    .argument('<id>', 'the customer id', parseCustomerId)
    .option('--json', 'print JSON')
    .action(async (id: string, options: { json?: boolean }) => {
      const d = await context.deps();
      const customer = await d.repositories.customers.get(keys.customer(id));
      if (!customer) throw new AdminError(`No customer ${id}.`);
      const connections = await d.repositories.connections.all(id);
      context.print({ customer: customer.value, connections }, options.json, () => [
        `${customer.value.id}${customer.value.displayName ? `  ${customer.value.displayName}` : ''}  created ${customer.value.createdAt}`,
        ...(connections.length === 0 ? ['  no connections'] : connections.map((c) => `  ${c.id}  ${c.mode.padEnd(11)}  ${c.state}`)),
      ]);
    });
}
