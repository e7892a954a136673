import { createHmac, randomBytes } from 'node:crypto';
import type { SecretStore } from '../secrets/secret-store.js';

/**
 * The connector's own signing key: one random secret in the secret store, made on first use, from
 * which purpose-specific keys are derived (consent links, PKCE verifiers). Deriving keeps one secret
 * to rotate and makes a key for one purpose useless for another.
 */

const SECRET_NAME = 'connector-signing-key';

export class ConnectorKeys {
  private master: Promise<Buffer> | undefined;

  constructor(private readonly secrets: Pick<SecretStore, 'get' | 'set'>) {}

  async derive(purpose: 'consent-link' | 'pkce-verifier'): Promise<Buffer> {
    return createHmac('sha256', await this.load()).update(`m365-connector/${purpose}/v1`).digest();
  }

  private load(): Promise<Buffer> {
    this.master ??= this.loadOrCreate().catch((error: unknown) => {
      this.master = undefined;
      throw error;
    });
    return this.master;
  }

  private async loadOrCreate(): Promise<Buffer> {
    const existing = await this.secrets.get(SECRET_NAME);
    if (existing) return Buffer.from(existing.value, 'base64');
    // Two instances starting at once may both make one; re-reading after writing settles on one.
    await this.secrets.set(SECRET_NAME, randomBytes(32).toString('base64'), { contentType: 'application/octet-stream', tags: { purpose: 'connector-signing-key' } });
    const stored = await this.secrets.get(SECRET_NAME);
    if (!stored) throw new Error('The connector signing key vanished right after it was stored.');
    return Buffer.from(stored.value, 'base64');
  }
}
