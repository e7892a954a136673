import { CommanderError } from 'commander';
import { dirname, join, resolve } from 'node:path';
import tls from 'node:tls';
import { fileURLToPath } from 'node:url';
import { getServices } from '../composition.js';
import { ConfigError } from '../config.js';
import { readLocalSettings } from '../local-settings.js';
import { redactText } from '../telemetry/redact.js';
import { AdminError, buildAdminCli } from './admin-cli.js';
import { adminDeps } from './admin-deps.js';
import { readPassword } from './read-password.js';

// `npm run connector -- <command>`: the settings come from the environment, then
// local.settings.json, then the sandbox a default `npm start` runs (when no real app is
// configured), then the local defaults.
const appDir = resolve(dirname(fileURLToPath(import.meta.url)), '..', '..');
const settings = await readLocalSettings(appDir, process.env, { sandboxDataDir: join(appDir, '.local') });
Object.assign(process.env, settings.values);
if (settings.sandboxCaPem !== undefined) tls.setDefaultCACertificates([...tls.getCACertificates('default'), settings.sandboxCaPem]);

const program = buildAdminCli(
  async () =>
    adminDeps(await getServices(), () =>
      readPassword(process.env, process.stdin, (text) => {
        process.stderr.write(text);
      }),
    ),
  { out: (text) => { process.stdout.write(`${text}\n`); }, err: (text) => { process.stderr.write(`${text}\n`); } },
);

try {
  await program.parseAsync(process.argv);
} catch (error) {
  if (error instanceof CommanderError) {
    process.exitCode = error.exitCode;
  } else {
    process.exitCode = 1;
    const known = error instanceof AdminError || error instanceof ConfigError;
    const message = error instanceof Error ? error.message : String(error);
    const unreachable = /ECONNREFUSED/.test(message) ? ' Is storage reachable (for Azurite: is npm start running)?' : '';
    process.stderr.write(`${redactText(known ? message : `Failed: ${message}.${unreachable}`)}\n`);
  }
}
