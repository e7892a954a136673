import { Option, type Command } from 'commander';
import { signInWithDeviceCode } from '../../connect/device-code-sign-in.js';
import { METHOD_NAMES, type SignInReport } from '../../connect/operator-sign-in.js';
import { signInWithPassword } from '../../connect/password-sign-in.js';
import type { SignInMethod } from '../../domain/connection.js';
import { keys } from '../../store/repositories.js';
import { PASSWORD_ENV } from '../read-password.js';
import { AdminError, parseConnectionId, parseCustomerId, type CommandContext } from '../cli-support.js';

interface ConnectOptions {
  customer: string;
  connection: string;
  deviceCode?: boolean;
  password?: boolean;
  username?: string;
}

export function registerConnectCommands(program: Command, context: CommandContext): void {
  program
    .command('connect')
    .description('Sign a user in to a delegated connection from here, without a consent link: by device code, or by password where ALLOW_ROPC=true')
    .requiredOption('--customer <id>', 'the customer', parseCustomerId)
    .requiredOption('--connection <id>', 'the delegated connection (con_…)', parseConnectionId)
    .addOption(new Option('--device-code', 'show a code that the user enters at Microsoft\'s sign-in page, on any device').conflicts(['password', 'username']))
    .addOption(
      new Option(
        '--password',
        `sign in with the user's password (ROPC, which gets around MFA and Conditional Access: only where ALLOW_ROPC=true). ` +
          `The password comes from ${PASSWORD_ENV} when set, else from standard input (a prompt without echo at a terminal), never from the command line`,
      ),
    )
    .option('--username <upn>', 'with --password: who signs in, e.g. megan@contoso.com')
    .action(async (options: ConnectOptions) => {
      const method = methodOf(options);
      const d = await context.deps();
      const connect = d.connect;
      if (!connect) throw new AdminError('No app registration is configured (ENTRA_CLIENT_ID), so nobody can sign in.');
      const found = await d.repositories.connections.get(keys.connection(options.customer, options.connection));
      if (!found) throw new AdminError(`Customer ${options.customer} has no connection ${options.connection}.`);
      const report =
        method === 'device-code'
          ? await signInWithDeviceCode(connect.signIn, found.value, (prompt) => {
              context.io.err(prompt.message);
            })
          : await signInWithPassword(connect.signIn, found.value, { username: options.username ?? '', password: () => connect.readPassword() });
      if (report.kind === 'refused') throw new AdminError(refusalText(report));
      context.io.out(connectedText(report, found.value.id, method));
    });
}

function methodOf(options: ConnectOptions): SignInMethod {
  if (options.deviceCode) return 'device-code';
  if (!options.password) throw new AdminError('Say how the user signs in: --device-code, or --password --username <upn>.');
  if (options.username === undefined) throw new AdminError('--password needs --username <upn>: who signs in.');
  return 'password';
}

function connectedText(report: Extract<SignInReport, { kind: 'connected' }>, connectionId: string, method: SignInMethod): string {
  return [
    `Connection ${connectionId} is connected: ${report.account} signed in by ${METHOD_NAMES[method]} (tenant ${report.tenantId}).`,
    `Mailboxes: ${report.mailboxes.join(', ') || 'none'}`,
    `Permissions: ${report.permissions.join(' ') || 'none'}`,
    ...report.warnings.map((warning) => `Warning: ${warning}`),
  ].join('\n');
}

function refusalText(report: Extract<SignInReport, { kind: 'refused' }>): string {
  const reference = report.reference;
  const codes = reference && [
    reference.error,
    ...(reference.aadsts === undefined ? [] : [`AADSTS${reference.aadsts}`]),
    ...(reference.traceId === undefined ? [] : [`trace id ${reference.traceId}`]),
    ...(reference.correlationId === undefined ? [] : [`correlation id ${reference.correlationId}`]),
  ];
  return [`Not connected. ${report.reason}`, `Next: ${report.nextStep}`, ...(codes ? [`Microsoft: ${codes.join(', ')}`] : [])].join('\n');
}
