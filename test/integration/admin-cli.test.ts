import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { buildAdminCli } from '../../src/admin/admin-cli.js';
import type { Command } from 'commander';

/** Every command of the admin CLI explains itself, and the npm script runs it. */
describe('admin CLI', () => {
  const noServices = () => Promise.reject(new Error('help needs no services'));

  function commandsOf(command: Command, path: string[] = []): string[][] {
    return command.commands.flatMap((sub) => [[...path, sub.name()], ...commandsOf(sub, [...path, sub.name()])]);
  }

  it('has --help on every command, naming its options', async () => {
    const all = commandsOf(buildAdminCli(noServices, { out: () => undefined, err: () => undefined }));
    expect(all.map((c) => c.join(' '))).toEqual(expect.arrayContaining([
      'keys create', 'keys list', 'keys revoke', 'customers create', 'customers list', 'customers show',
      'issuers add', 'issuers list', 'issuers remove', 'webhooks add', 'webhooks list', 'webhooks rotate-secret',
      'webhooks enable', 'webhooks disable', 'webhooks remove', 'events replay', 'connect', 'check',
    ]));
    for (const path of all) {
      const lines: string[] = [];
      const program = buildAdminCli(noServices, { out: (t) => lines.push(t), err: (t) => lines.push(t) });
      await expect(program.parseAsync(['node', 'connector', ...path, '--help'])).rejects.toMatchObject({ exitCode: 0 });
      const help = lines.join('\n');
      expect(help, path.join(' ')).toMatch(/^Usage: connector /);
      expect(help, path.join(' ')).toContain('-h, --help');
    }
    const keysCreate: string[] = [];
    await buildAdminCli(noServices, { out: (t) => keysCreate.push(t), err: (t) => keysCreate.push(t) })
      .parseAsync(['node', 'connector', 'keys', 'create', '--help'])
      .catch(() => undefined);
    expect(keysCreate.join('\n')).toMatch(/--customer <id>[\s\S]*--all/);
    // The password never goes on the command line; where it comes from is on the help page.
    const connect: string[] = [];
    await buildAdminCli(noServices, { out: (t) => connect.push(t), err: (t) => connect.push(t) })
      .parseAsync(['node', 'connector', 'connect', '--help'])
      .catch(() => undefined);
    expect(connect.join(' ').replace(/\s+/g, ' ')).toMatch(/--device-code[\s\S]*--password .*ALLOW_ROPC=true.*from CONNECT_PASSWORD when set, else from standard input/);
    const check: string[] = [];
    await buildAdminCli(noServices, { out: (t) => check.push(t), err: (t) => check.push(t) })
      .parseAsync(['node', 'connector', 'check', '--help'])
      .catch(() => undefined);
    expect(check.join(' ').replace(/\s+/g, ' ')).toMatch(/Exits non-zero when a step failed.*--test-message-to <address>.*--mailbox <address> only this mailbox; repeat for more.*--json/);
  });

  it('refuses unclear input before touching storage', async () => {
    const lines: string[] = [];
    const program = buildAdminCli(noServices, { out: (t) => lines.push(t), err: (t) => lines.push(t) });
    await expect(program.parseAsync(['node', 'connector', 'keys', 'create', '--customer', 'a/b'])).rejects.toMatchObject({ exitCode: 1 });
    expect(lines.join('\n')).toMatch(/customer ids are 1-128 letters/);
  });

  it('runs through npm run connector', async () => {
    const root = fileURLToPath(new URL('../../', import.meta.url));
    const { stdout } = await promisify(execFile)('npm', ['run', '--silent', 'connector', '--', '--help'], { cwd: root });
    expect(stdout).toMatch(/Usage: connector \[options\] \[command\]/);
    expect(stdout).toMatch(/keys[\s\S]*customers[\s\S]*issuers[\s\S]*webhooks[\s\S]*events/);
  }, 60_000);
});
