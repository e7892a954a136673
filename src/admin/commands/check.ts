import { InvalidArgumentError, type Command } from 'commander';
import { z } from 'zod';
import type { CheckOptions } from '../../connectivity/check-connection.js';
import type { CheckStep, ConnectionCheck } from '../../domain/connection-check.js';
import { keys, type Repositories } from '../../store/repositories.js';
import { AdminError, parseConnectionId, parseCustomerId, type CommandContext } from '../cli-support.js';

interface CheckCommandOptions {
  customer: string;
  connection: string;
  testMessageTo?: string;
  mailbox?: string[];
  json?: boolean;
}

const MARKS: Record<CheckStep['outcome'], string> = { ok: '✓', failed: '✗', skipped: '–' };

export function registerCheckCommands(program: Command, context: CommandContext): void {
  program
    .command('check')
    .description(
      'Check that mail can flow through a connection: a token per resource, then Graph, IMAP, POP3 and SMTP for each mailbox, ' +
        'each failure named with what to do. Exits non-zero when a step failed',
    )
    .requiredOption('--customer <id>', 'the customer', parseCustomerId)
    .requiredOption('--connection <id>', 'the connection (con_…)', parseConnectionId)
    .option('--test-message-to <address>', 'also send one plain test message to this address, from each mailbox that sends over SMTP', parseAddress)
    .option('--mailbox <address>', "only this mailbox; repeat for more (default: all of the connection's)", collectAddress)
    .option('--json', 'print the check as JSON')
    .action(async (options: CheckCommandOptions) => {
      const d = await context.deps();
      const found = await d.repositories.connections.get(keys.connection(options.customer, options.connection));
      if (!found) throw new AdminError(`Customer ${options.customer} has no connection ${options.connection}.`);
      const connection = found.value;
      // As the API's 409: a pending connection has no tokens yet, a disconnected one has none any more.
      if (connection.state === 'pending') {
        throw new AdminError(`Connection ${connection.id} is pending: there is nothing to check until it is connected. Send the customer a consent link, or sign a user in with \`connect\`.`);
      }
      if (connection.state === 'disconnected') {
        throw new AdminError(`Connection ${connection.id} is disconnected: there is nothing to check. Create a new connection to connect the tenant again.`);
      }
      if (!d.checkConnection) throw new AdminError('No app registration is configured (ENTRA_CLIENT_ID), so there is nothing to check with.');
      if (options.mailbox) await requireMailboxes(d.repositories.mailboxes, connection.customerId, connection.id, options.mailbox);

      const checkOptions: CheckOptions = {
        ...(options.testMessageTo !== undefined && { testMessageTo: options.testMessageTo }),
        ...(options.mailbox !== undefined && { mailboxes: options.mailbox }),
      };
      const check = await d.checkConnection(connection, checkOptions);
      context.print(check, options.json, () => checkLines(check));
      // The report is on standard output either way; the exit status and this line on standard error say it failed.
      if (!check.ok) throw new AdminError(failureSummary(check));
    });
}

/** The check for a person: a line per step, and under a failed one what it was, what to do, and what the server said. */
function checkLines(check: ConnectionCheck): string[] {
  if (check.steps.length === 0) return [`Connection ${check.connectionId} has no mailboxes to check.`];
  const names = check.steps.map((step) => step.mailbox ?? step.resource ?? '');
  const nameWidth = Math.max(...names.map((name) => name.length));
  const stepWidth = Math.max(...check.steps.map((step) => step.step.length));
  const lines = check.steps.flatMap((step, index) => {
    const took = step.outcome === 'skipped' ? 'skipped' : `${step.durationMs} ms`;
    const line = `${MARKS[step.outcome]} ${step.step.padEnd(stepWidth)}  ${(names[index] ?? '').padEnd(nameWidth)}  ${took.padStart(8)}${details(step)}`;
    const cause = step.cause;
    if (step.outcome !== 'failed' || !cause) return [line];
    return [
      line,
      `    Cause: ${cause.code}${cause.microsoftCode === undefined ? '' : ` (${cause.microsoftCode})`}`,
      `    ${cause.explanation}`,
      `    Next: ${cause.nextStep}`,
      ...(step.serverText === undefined ? [] : [`    Server: ${step.serverText}`]),
    ];
  });
  return check.ok ? [...lines, '', `All ${check.steps.length} steps passed for connection ${check.connectionId}.`] : lines;
}

function failureSummary(check: ConnectionCheck): string {
  const count = (outcome: CheckStep['outcome']) => check.steps.filter((step) => step.outcome === outcome).length;
  const skipped = count('skipped');
  return (
    `${count('failed')} of ${check.steps.length} steps failed for connection ${check.connectionId}` +
    `${skipped > 0 ? `, ${skipped} skipped because a step they need failed` : ''}; fix the first failure first.`
  );
}

/** What a successful probe found (messages in the inbox, a test message's id), as `name value` pairs. */
function details(step: CheckStep): string {
  const pairs = Object.entries(step.detail ?? {}).filter(([, value]) => ['string', 'number', 'boolean'].includes(typeof value));
  return pairs.length === 0 ? '' : `  (${pairs.map(([name, value]) => `${name} ${String(value)}`).join(', ')})`;
}

/** --mailbox must name the connection's own mailboxes: the checker would pass over any other without a word. */
async function requireMailboxes(
  mailboxes: Repositories['mailboxes'],
  customerId: string,
  connectionId: string,
  wanted: readonly string[],
): Promise<void> {
  const known = (await mailboxes.all(customerId, { prefix: keys.mailboxesOf(connectionId) })).map((mailbox) => mailbox.address);
  const unknown = wanted.filter((address) => !known.some((k) => k.toLowerCase() === address.toLowerCase()));
  if (unknown.length > 0) {
    throw new AdminError(`Connection ${connectionId} has no mailbox ${unknown.join(', ')}; its mailboxes: ${known.join(', ') || 'none'}.`);
  }
}

function parseAddress(value: string): string {
  const parsed = z.email().safeParse(value);
  if (!parsed.success) throw new InvalidArgumentError('not an email address');
  return parsed.data;
}

function collectAddress(value: string, previous: string[] | undefined): string[] {
  return [...(previous ?? []), parseAddress(value)];
}
