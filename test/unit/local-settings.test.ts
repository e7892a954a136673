import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { readLocalSettings, SANDBOX_SETTINGS_FILE } from '../../src/local-settings.js';

describe('readLocalSettings', () => {
  let appDir: string;
  let dataDir: string;

  beforeEach(async () => {
    appDir = await mkdtemp(join(tmpdir(), 'settings-'));
    dataDir = join(appDir, '.local');
    await mkdir(dataDir);
    await writeFile(join(dataDir, 'ca.pem'), '-----BEGIN CERTIFICATE-----\nsandbox\n-----END CERTIFICATE-----\n');
    await writeFile(
      join(dataDir, SANDBOX_SETTINGS_FILE),
      JSON.stringify({ Values: { ENTRA_CLIENT_ID: 'sandbox-app', ENTRA_CLOUD: 'custom', ENTRA_LOGIN_URL: 'https://127.0.0.1:7072' }, caCertificatePath: join(dataDir, 'ca.pem') }),
    );
  });

  afterEach(async () => {
    await rm(appDir, { recursive: true, force: true });
  });

  it('layers the environment over local.settings.json over the embedded defaults', async () => {
    await writeFile(join(appDir, 'local.settings.json'), JSON.stringify({ Values: { LOG_LEVEL: 'debug', VENDOR_NAME: 'From file', PORTLESS: 1 } }));
    const settings = await readLocalSettings(appDir, { VENDOR_NAME: 'From env' });
    expect(settings.values).toMatchObject({ SECRET_STORE: 'local', LOG_LEVEL: 'debug', VENDOR_NAME: 'From env', PORTLESS: '1' });
    expect(settings.source).toBe(join(appDir, 'local.settings.json'));
    expect(settings.sandboxCaPem).toBeUndefined();
  });

  it('leaves out the Azurite and local secret store defaults when a deployed environment\'s storage or Key Vault is configured', async () => {
    const deployed = await readLocalSettings(appDir, {
      AzureWebJobsStorage__accountName: 'stcontoso',
      AzureWebJobsStorage__credential: 'azurecli',
      KEY_VAULT_URL: 'https://kv-contoso.vault.azure.net/',
    });
    expect(deployed.values.AzureWebJobsStorage).toBeUndefined();
    expect(deployed.values.SECRET_STORE).toBeUndefined();
    const local = await readLocalSettings(appDir, {});
    expect(local.values).toMatchObject({ AzureWebJobsStorage: 'UseDevelopmentStorage=true', SECRET_STORE: 'local' });
  });

  it('applies the settings of the sandbox npm start runs, and trusts its CA, when asked to', async () => {
    const settings = await readLocalSettings(appDir, { LOG_LEVEL: 'warn' }, { sandboxDataDir: dataDir });
    expect(settings.values).toMatchObject({ ENTRA_CLIENT_ID: 'sandbox-app', ENTRA_CLOUD: 'custom', ENTRA_LOGIN_URL: 'https://127.0.0.1:7072', LOG_LEVEL: 'warn' });
    expect(settings.sandboxCaPem).toContain('BEGIN CERTIFICATE');
  });

  it('leaves the sandbox out entirely when a real app is configured, so no sandbox setting mixes with it', async () => {
    await writeFile(join(appDir, 'local.settings.json'), JSON.stringify({ Values: { ENTRA_CLIENT_ID: 'real-app' } }));
    const settings = await readLocalSettings(appDir, {}, { sandboxDataDir: dataDir });
    expect(settings.values.ENTRA_CLIENT_ID).toBe('real-app');
    expect(settings.values.ENTRA_CLOUD).toBeUndefined();
    expect(settings.values.ENTRA_LOGIN_URL).toBeUndefined();
    expect(settings.sandboxCaPem).toBeUndefined();
  });

  it('works without a sandbox, and refuses a damaged sandbox settings file with what to do', async () => {
    expect((await readLocalSettings(appDir, {}, { sandboxDataDir: join(appDir, 'nowhere') })).values.ENTRA_CLIENT_ID).toBeUndefined();
    await writeFile(join(dataDir, SANDBOX_SETTINGS_FILE), JSON.stringify({ something: 'else' }));
    await expect(readLocalSettings(appDir, {}, { sandboxDataDir: dataDir })).rejects.toThrow(/not a sandbox settings file; delete it/);
  });
});
