import { z } from 'zod';
import { assertSecretName, type SecretStore } from '../secrets/secret-store.js';
import { generateWebhookSecret, webhookSecretKey } from './webhook-signing.js';

/**
 * Each webhook endpoint's signing secrets, kept in the SecretStore as one small JSON document per
 * endpoint: the current secret and, after a rotation, the previous one until its grace period
 * ends. During that time every delivery carries both signatures, so the vendor can switch its
 * receiver to the new secret without rejecting a single event.
 *
 * Secret values reach the caller of create and rotate (the admin command shows them once) and
 * the deliverer, in memory; nothing here logs or stores them anywhere else.
 */

export const DEFAULT_ROTATION_GRACE_MS = 24 * 60 * 60 * 1000;
const DEFAULT_CACHE_TTL_MS = 60_000;

const storedSecretsSchema = z.object({
  format: z.literal(1),
  /** Current secret first. */
  secrets: z
    .array(
      z.object({
        secret: z.string(),
        createdAt: z.iso.datetime(),
        /** Set on a secret that a rotation replaced: it still signs until then. */
        activeUntil: z.iso.datetime().optional(),
      }),
    )
    .min(1),
});
type StoredSecrets = z.infer<typeof storedSecretsSchema>;
type SecretEntry = StoredSecrets['secrets'][number];

export interface WebhookSecretsDeps {
  store: Pick<SecretStore, 'get' | 'set' | 'delete'>;
  now?: () => Date;
  generate?: () => string;
  /**
   * How long activeSecrets trusts what it read, so a busy queue does not read Key Vault for every
   * message. A rotation made by another process is seen after at most this long; until then the
   * previous secret, still within its grace period, keeps every delivery verifiable.
   */
  cacheTtlMs?: number;
}

export interface RotatedSecret {
  /** The new current secret: show it to the vendor once. */
  secret: string;
  /** Until when the replaced secret still signs; absent when it stopped at once (grace period 0). */
  previousActiveUntil?: Date;
}

export class WebhookSecretExistsError extends Error {
  constructor(readonly endpointId: string) {
    super(`Webhook endpoint ${endpointId} already has a signing secret; rotate it to get a new one.`);
    this.name = 'WebhookSecretExistsError';
  }
}

/**
 * A stored document that is not ours; the parse error is dropped because it could quote the value.
 * Deliveries catch it to fail with advice instead of retrying what only a rotation repairs.
 */
export class DamagedSecretError extends Error {
  constructor(name: string) {
    super(`The signing secret "${name}" is not a webhook secret document; rotate the endpoint's secret to replace it.`);
    this.name = 'DamagedSecretError';
  }
}

/** The secret's name: Key Vault allows letters, digits and hyphens only. */
export function webhookSecretName(endpointId: string): string {
  const name = `webhook-${endpointId.toLowerCase().replace(/_/g, '-')}`;
  assertSecretName(name);
  return name;
}

export class WebhookSecrets {
  private readonly now: () => Date;
  private readonly generate: () => string;
  private readonly cacheTtlMs: number;
  /** The read itself is cached, so concurrent deliveries to one endpoint share one store read. */
  private readonly cache = new Map<string, { entries: Promise<SecretEntry[] | undefined>; expiresAt: number }>();

  constructor(private readonly deps: WebhookSecretsDeps) {
    this.now = deps.now ?? (() => new Date());
    this.generate = deps.generate ?? (() => generateWebhookSecret());
    this.cacheTtlMs = deps.cacheTtlMs ?? DEFAULT_CACHE_TTL_MS;
  }

  /** Gives a new endpoint its first secret and returns it. */
  async createEndpointSecret(endpointId: string): Promise<string> {
    if (await this.read(endpointId)) throw new WebhookSecretExistsError(endpointId);
    const secret = this.generate();
    await this.write(endpointId, [{ secret, createdAt: this.now().toISOString() }]);
    return secret;
  }

  /**
   * Makes a new secret current and keeps the replaced one signing for `gracePeriodMs` (0 stops it
   * at once, for a secret that leaked). Only the last replaced secret is kept: a second rotation
   * within the grace period means the vendor has moved on. An endpoint without a secret gets one.
   * Two rotations at the same moment may both report success with only one of them kept.
   */
  async rotateEndpointSecret(
    endpointId: string,
    options: { gracePeriodMs?: number } = {},
  ): Promise<RotatedSecret> {
    const gracePeriodMs = options.gracePeriodMs ?? DEFAULT_ROTATION_GRACE_MS;
    if (!Number.isFinite(gracePeriodMs) || gracePeriodMs < 0) {
      throw new RangeError('The grace period must be zero or a positive number of milliseconds');
    }
    const now = this.now();
    // A damaged document is what a rotation repairs, so it counts as no current secret here.
    const current = (await this.read(endpointId).catch((error: unknown) => {
      if (error instanceof DamagedSecretError) return undefined;
      throw error;
    }))?.[0];
    const secret = this.generate();
    const entries: SecretEntry[] = [{ secret, createdAt: now.toISOString() }];
    const previousActiveUntil = new Date(now.getTime() + gracePeriodMs);
    const keepPrevious = current !== undefined && gracePeriodMs > 0;
    if (keepPrevious) entries.push({ ...current, activeUntil: previousActiveUntil.toISOString() });
    await this.write(endpointId, entries);
    return { secret, ...(keepPrevious && { previousActiveUntil }) };
  }

  /** The secrets a delivery signs with now, current first; empty when the endpoint has none. */
  async activeSecrets(endpointId: string): Promise<string[]> {
    const nowMs = this.now().getTime();
    let cached = this.cache.get(endpointId);
    if (!cached || cached.expiresAt <= nowMs) {
      const entries = this.read(endpointId);
      cached = { entries, expiresAt: nowMs + this.cacheTtlMs };
      this.cache.set(endpointId, cached);
      // A failed or empty read is not remembered: the next delivery asks the store again.
      const forget = () => {
        if (this.cache.get(endpointId) === cached) this.cache.delete(endpointId);
      };
      void entries.then((found) => { if (!found) forget(); }, forget);
    }
    const entries = (await cached.entries) ?? [];
    return entries
      .filter((entry) => entry.activeUntil === undefined || Date.parse(entry.activeUntil) > nowMs)
      .map((entry) => entry.secret);
  }

  /** For an endpoint that is removed; false when it had no secret. */
  async deleteEndpointSecret(endpointId: string): Promise<boolean> {
    this.cache.delete(endpointId);
    return this.deps.store.delete(webhookSecretName(endpointId));
  }

  private async read(endpointId: string): Promise<SecretEntry[] | undefined> {
    const name = webhookSecretName(endpointId);
    const stored = await this.deps.store.get(name);
    if (!stored) return undefined;
    let parsed: StoredSecrets;
    try {
      parsed = storedSecretsSchema.parse(JSON.parse(stored.value));
      for (const entry of parsed.secrets) webhookSecretKey(entry.secret);
    } catch {
      throw new DamagedSecretError(name);
    }
    return parsed.secrets;
  }

  private async write(endpointId: string, secrets: SecretEntry[]): Promise<void> {
    const document: StoredSecrets = { format: 1, secrets };
    await this.deps.store.set(webhookSecretName(endpointId), JSON.stringify(document), {
      contentType: 'application/json',
      tags: { purpose: 'webhook-signing', endpointId },
    });
    this.cache.delete(endpointId);
  }
}
