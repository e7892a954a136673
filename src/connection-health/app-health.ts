import type { AppHealth } from '../domain/app-health.js';
import { VENDOR_EVENTS, type EventType } from '../domain/events.js';
import { newId } from '../domain/ids.js';
import type { TokenFailure } from '../domain/token-failure.js';
import type { AppGate } from '../identity/access-tokens.js';
import type { NewEvent } from '../events/record-event.js';
import { updateAfterLastEvent } from '../events/update-after-last-event.js';
import { keys, type Repositories } from '../store/repositories.js';
import { ConcurrencyError, UNCHANGED } from '../store/table-repository.js';
import type { Logger } from '../telemetry/logger.js';
import type { Metrics } from '../telemetry/metrics.js';

/**
 * Conditions of a whole app registration. A refused credential (AADSTS7000222 and its kind) breaks
 * every connection of the app at once and has one fix, the vendor's: it is raised once, as one
 * `app.misconfigured` event and one error log, and connections show it without each being rewritten.
 * While it lasts, one token request per interval tries the credential again; the first that works
 * clears it (`app.recovered`).
 */

export interface AppHealthDeps {
  appHealth: Repositories['appHealth'];
  recordEvent(event: NewEvent): Promise<unknown>;
  logger: Logger;
  metrics: Metrics;
  now(): Date;
  /** How often a misconfigured app's credential is tried again. */
  probeIntervalMs?: number;
  /**
   * The client id of the app registration an app id names: the row belongs to the registration, so
   * deployments that share a storage account with other registrations under the same app id never meet.
   */
  clientIdOf(appId: string): string;
}

const DEFAULT_PROBE_INTERVAL_MS = 15 * 60_000;

export class AppHealthService {
  constructor(private readonly deps: AppHealthDeps) {}

  async get(appId: string): Promise<AppHealth | undefined> {
    return (await this.deps.appHealth.get(keys.appHealth(this.deps.clientIdOf(appId))))?.value;
  }

  /**
   * Whether a token request for the app may go ahead: yes when nothing is known against it; when
   * its credential is known to be refused, only the one request that wins the next try after the
   * interval (it must ask Microsoft), and the others get the failure without asking.
   */
  async gate(appId: string): Promise<AppGate> {
    const key = keys.appHealth(this.deps.clientIdOf(appId));
    const current = await this.deps.appHealth.get(key);
    const broken = current?.value.misconfigured;
    if (!current || !broken) return { allow: true };
    const failure: TokenFailure = { kind: 'app_config', state: 'app_misconfigured', code: broken.code, explanation: broken.explanation, nextStep: broken.nextStep, remedy: 'vendor' };
    const now = this.deps.now();
    if (broken.probeAt > now.toISOString()) return { allow: false, failure };
    try {
      await this.deps.appHealth.replace(key, { ...current.value, misconfigured: { ...broken, probeAt: this.nextProbe(now) }, updatedAt: now.toISOString() }, current.etag);
      return { allow: true, probe: true };
    } catch (error) {
      if (error instanceof ConcurrencyError) return { allow: false, failure };
      throw error;
    }
  }

  /** When a misconfigured app's credential is tried next. */
  async nextProbeAt(appId: string): Promise<Date | undefined> {
    const probeAt = (await this.get(appId))?.misconfigured?.probeAt;
    return probeAt === undefined ? undefined : new Date(probeAt);
  }

  private nextProbe(now: Date): string {
    return new Date(now.getTime() + (this.deps.probeIntervalMs ?? DEFAULT_PROBE_INTERVAL_MS)).toISOString();
  }

  async markMisconfigured(appId: string, failure: TokenFailure): Promise<void> {
    const now = this.deps.now();
    const at = now.toISOString();
    const probeAt = this.nextProbe(now);
    const data = { appId, clientId: this.deps.clientIdOf(appId), code: failure.code, explanation: failure.explanation, nextStep: failure.nextStep };
    const changed = await this.change(appId, { type: 'app.misconfigured', data }, (current) => {
      if (current.misconfigured) return UNCHANGED;
      return { ...current, misconfigured: { since: at, code: failure.code, explanation: failure.explanation, nextStep: failure.nextStep, probeAt } };
    });
    if (!changed) return;
    this.deps.logger.error('app registration misconfigured: every connection of the app is failing', { appId, code: failure.code, nextStep: failure.nextStep });
    this.deps.metrics.count('app.misconfigured', { appId, code: failure.code });
  }

  async markWorking(appId: string): Promise<void> {
    const current = await this.get(appId);
    if (!current?.misconfigured) return;
    const since = current.misconfigured.since;
    const changed = await this.change(appId, { type: 'app.recovered', data: { appId, clientId: this.deps.clientIdOf(appId), misconfiguredSince: since } }, (value) => {
      if (!value.misconfigured) return UNCHANGED;
      const next = { ...value };
      delete next.misconfigured;
      return next;
    });
    if (changed) this.deps.logger.info('app registration works again', { appId, misconfiguredSince: since });
  }

  /**
   * Rewrites the app's row, with an event when one is given, the way connections do: the event is
   * saved in the row and recorded once written; a change that would replace an event not recorded
   * yet (its writer died in between) records it first (updateAfterLastEvent). True when the row
   * changed.
   */
  async change(appId: string, event: { type: EventType; data: Record<string, unknown> } | undefined, mutate: (current: AppHealth) => AppHealth | typeof UNCHANGED): Promise<boolean> {
    const key = keys.appHealth(this.deps.clientIdOf(appId));
    const recorded = new Set<string>();
    const before = await this.deps.appHealth.get(key);
    if (before) await this.recordLast(before.value, recorded);
    const now = this.deps.now();
    // Set by the mutator, whose last run is the one that counts.
    const outcome = { changed: false };
    const mutateRow = (current: AppHealth | undefined): AppHealth | typeof UNCHANGED => {
      outcome.changed = false;
      const next = mutate(current ?? { appId, updatedAt: now.toISOString() });
      if (next === UNCHANGED) return UNCHANGED;
      outcome.changed = true;
      const written: AppHealth = { ...next, updatedAt: now.toISOString() };
      if (event) written.lastEvent = { id: newId('evt', now.getTime()), type: event.type, occurredAt: now.toISOString(), data: event.data };
      return written;
    };
    const updated = await updateAfterLastEvent(this.deps.appHealth, key, mutateRow, (row) => this.recordLast(row, recorded), recorded);
    if (outcome.changed && event && updated) await this.recordLast(updated.value, recorded);
    return outcome.changed;
  }

  private async recordLast(health: AppHealth, recorded: Set<string>): Promise<void> {
    const last = health.lastEvent;
    if (!last) return;
    await this.deps.recordEvent({ id: last.id, type: last.type, occurredAt: last.occurredAt, customerId: VENDOR_EVENTS, data: last.data });
    recorded.add(last.id);
  }
}
