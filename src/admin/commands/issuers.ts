import { Option, type Command } from 'commander';
import { fetchKeySet } from '../../api/auth/issuer-key-set.js';
import { jwtIssuerSchema } from '../../domain/access.js';
import { keys } from '../../store/repositories.js';
import { AdminError, describeScope, scopeOf, scopeOption, type CommandContext } from '../cli-support.js';

export function registerIssuerCommands(program: Command, context: CommandContext): void {
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
      const d = await context.deps();
      const customerScope = scopeOf(options);
      const issuerName = jwtIssuerSchema.shape.issuer.safeParse(options.issuer);
      if (!issuerName.success) throw new AdminError(`--issuer: ${issuerName.error.issues[0]?.message ?? 'not valid'}.`);
      try {
        // The same fetch, with the same address checks, that token verification does.
        const { keys: found } = await fetchKeySet(options.keyUrl, { allowPrivateNetwork: d.allowPrivateNetworkUrls });
        context.io.out(`The key URL answers with ${found.length} usable key(s): ${found.map((k) => k.kid ?? '(no kid)').join(', ')}.`);
      } catch (error) {
        throw new AdminError(`The key URL cannot be used: ${error instanceof Error ? error.message : String(error)}`);
      }
      const outcome = { existed: false };
      await d.repositories.jwtIssuers.update(keys.jwtIssuer(options.issuer), (current) => {
        outcome.existed = current !== undefined;
        return {
          issuer: options.issuer,
          keyUrl: options.keyUrl,
          customerScope,
          createdAt: current?.createdAt ?? d.now().toISOString(),
          ...(options.audience !== undefined && { audience: options.audience }),
        };
      });
      context.io.out(`Issuer ${options.issuer} ${outcome.existed ? 'updated' : 'registered'} for ${describeScope(customerScope)}.`);
      if (options.audience === undefined) {
        context.io.out('Without --audience, a token this issuer made for any of your services is accepted here; consider requiring one.');
      }
    });
  issuersCommand
    .command('list')
    .description('List registered token issuers')
    .option('--json', 'print JSON')
    .action(async (options: { json?: boolean }) => {
      const d = await context.deps();
      const items = await d.repositories.jwtIssuers.all(keys.jwtIssuersPartition);
      context.print(items, options.json, () =>
        items.length === 0 ? ['No issuers.'] : items.map((i) => `${i.issuer}  ${describeScope(i.customerScope)}  ${i.keyUrl}${i.audience ? `  aud=${i.audience}` : ''}`),
      );
    });
  issuersCommand
    .command('remove')
    .description('Stop accepting an issuer\'s tokens (running instances notice within 30 seconds)')
    .argument('<iss>', 'the issuer')
    .action(async (issuer: string) => {
      const d = await context.deps();
      if (!(await d.repositories.jwtIssuers.delete(keys.jwtIssuer(issuer)))) throw new AdminError(`No issuer ${issuer}.`);
      context.io.out(`Issuer ${issuer} removed.`);
    });
}
