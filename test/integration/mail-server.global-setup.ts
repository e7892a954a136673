import { randomUUID } from 'node:crypto';
import { chmod, mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { TestProject } from 'vitest/node';
import {
  mailServerSupport,
  startMailServerOnFreePorts,
  writeSigningKeys,
  type MailServerPorts,
} from '../../local/sandbox/mail-server/index.js';
import { generateSigningKey } from '../support/mail-tokens.js';
import { createSigningKeyMaterial, loadSigningKey, type SigningKeyMaterial } from '../../local/sandbox/identity/index.js';

/**
 * One real Dovecot + Postfix for the integration run (local/sandbox/mail-server), on free ports, in
 * a fresh directory. It runs with XOAUTH2 only, the one mechanism Exchange Online offers.
 *
 * When it cannot start, the run fails, unless this is a developer machine that cannot run it at
 * all (not root, or no Debian packages and no apt-get) and CI is not set: then the mail tests are
 * skipped, and this says so loudly.
 */

export interface MailServerForTests {
  host: string;
  ports: MailServerPorts;
  caPem: string;
  dovecotLogPath: string;
  /** Tenants whose tokens the servers accept. */
  tenants: [string, string];
  /** The client id registered under its own azp entry in the key dict (v2 tokens). */
  azpClientId: string;
  /** The key a sandbox identity platform signs with (startSandboxIdentity's signingKey), registered too. */
  sandboxSigningKey: SigningKeyMaterial;
  /** One RS256 key, registered under two kids: as PEM, and as a JWK. */
  signingKey: { pemKid: string; jwkKid: string; privateKeyPem: string };
}

export default async function setup(project: TestProject): Promise<(() => Promise<void>) | undefined> {
  const support = mailServerSupport();
  if (!support.runnable && !process.env.CI) {
    warnSkipped(support.reason);
    project.provide('mailServer', null);
    return undefined;
  }

  // mkdtemp makes a 0700 directory; Dovecot's and Postfix's unprivileged processes must get in.
  const stackDir = await mkdtemp(join(tmpdir(), 'm365-mail-'));
  await chmod(stackDir, 0o755);
  const tenants: [string, string] = [randomUUID(), randomUUID()];
  const server = await startMailServerOnFreePorts({ stackDir, tenants, mechanisms: ['xoauth2'] }).catch((error: unknown) => {
    throw new Error(`The mail server stack for the integration tests did not start (files kept in ${stackDir}).`, {
      cause: error,
    });
  });

  try {
    const key = await generateSigningKey('sandbox-mail-pem');
    const jwkKid = 'sandbox-mail-jwk';
    const azpClientId = randomUUID();
    // The sandbox identity platform's key, for tests that log in with tokens the connector got from it.
    const sandboxKeyMaterial = await createSigningKeyMaterial();
    const sandboxKey = await loadSigningKey(sandboxKeyMaterial);
    await writeSigningKeys(server.keyDictPath, [
      { kid: sandboxKey.kid, publicKeyPem: sandboxKey.publicKeyPem },
      { kid: key.kid, publicKeyPem: key.publicKeyPem },
      { kid: jwkKid, jwk: { ...key.publicJwk, kid: jwkKid } },
      { kid: key.kid, azp: azpClientId, publicKeyPem: key.publicKeyPem },
    ]);
    project.provide('mailServer', {
      host: server.host,
      ports: server.ports,
      caPem: server.caPem,
      dovecotLogPath: server.dovecotLogPath,
      tenants,
      azpClientId,
      signingKey: { pemKid: key.kid, jwkKid, privateKeyPem: key.privateKeyPem },
      sandboxSigningKey: sandboxKeyMaterial,
    });
  } catch (error) {
    await server.stop();
    throw error;
  }

  return async () => {
    await server.stop();
    await rm(stackDir, { recursive: true, force: true });
  };
}

function warnSkipped(reason: string): void {
  const lines = [
    'MAIL SERVER TESTS WILL BE SKIPPED',
    `Reason: ${reason}.`,
    'test/integration/mail-server.test.ts needs a real Dovecot and Postfix (local/sandbox/mail-server),',
    'which run on Debian/Ubuntu as root and are installed with apt-get on first use.',
    'Run the integration tests as root on such a machine (or in CI, where this is an error) to cover them.',
  ];
  const width = Math.max(...lines.map((line) => line.length));
  const border = `+${'-'.repeat(width + 2)}+`;
  console.warn(['', border, ...lines.map((line) => `| ${line.padEnd(width)} |`), border, ''].join('\n'));
}

declare module 'vitest' {
  export interface ProvidedContext {
    /** null when the stack could not run on this machine and the mail tests are skipped. */
    mailServer: MailServerForTests | null;
  }
}
