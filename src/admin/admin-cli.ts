import { Command } from 'commander';
import { type AdminDeps, type CliOutput, type CommandContext } from './cli-support.js';
import { registerCheckCommands } from './commands/check.js';
import { registerConnectCommands } from './commands/connect.js';
import { registerCustomerCommands } from './commands/customers.js';
import { registerEventCommands } from './commands/events.js';
import { registerIssuerCommands } from './commands/issuers.js';
import { registerKeyCommands } from './commands/keys.js';
import { registerWebhookCommands } from './commands/webhooks.js';

export { AdminError, type AdminDeps, type CliOutput } from './cli-support.js';

/**
 * The admin CLI (`npm run connector -- …`): API keys, customers, token issuers, webhook endpoints,
 * event replay, signing users in to delegated connections (device code, or password where
 * ALLOW_ROPC permits) and checking that mail flows through a connection, against the same storage
 * and secret store as the functions. Secrets it makes (API keys, webhook signing secrets) are
 * printed once and stored only as hashes or in the secret store.
 */
export function buildAdminCli(deps: () => Promise<AdminDeps>, io: CliOutput): Command {
  const program = new Command('connector')
    .description('Administer m365-connector: API keys, customers, token issuers, webhook endpoints, events, sign-ins, connectivity checks.')
    .configureOutput({ writeOut: (text) => { io.out(text.replace(/\n$/, '')); }, writeErr: (text) => { io.err(text.replace(/\n$/, '')); } })
    .exitOverride()
    .showHelpAfterError();
  const context: CommandContext = {
    deps,
    io,
    print: (value, json, lines) => {
      io.out(json ? JSON.stringify(value, null, 2) : lines().join('\n'));
    },
  };
  registerKeyCommands(program, context);
  registerCustomerCommands(program, context);
  registerIssuerCommands(program, context);
  registerWebhookCommands(program, context);
  registerEventCommands(program, context);
  registerConnectCommands(program, context);
  registerCheckCommands(program, context);
  return program;
}
