import { randomUUID } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { refreshConnection, type RefreshMessage, type RefreshOutcome } from '../../src/connection-health/refresh-connection.js';
import type { Connection } from '../../src/domain/connection.js';
import type { Mailbox } from '../../src/domain/mailbox.js';
import type { OutboundMessage } from '../../src/domain/outbound-message.js';
import type { PollJob, PollOutcome } from '../../src/receiving/poll-mailbox.js';
import { sendMessage, type SendOutcome } from '../../src/sending/send-message.js';
import type { SendJob } from '../../src/sending/submit-message.js';
import { keys } from '../../src/store/repositories.js';
import { UNCHANGED } from '../../src/store/table-repository.js';
import { startConnectEnvironment, type ConnectEnvironment, type Directory } from '../support/connect-environment.js';
import { mailboxOf } from '../support/receive-environment.js';
import { sendTestKit, type SendTestKit } from '../support/send-environment.js';
import { Clock, CrashPlan, QueueModel } from './crash-points.js';
import { identityInstance, receiving, refreshDeps, sendDeps, sendParts, submit, type IdentityInstance, type SendParts } from './use-cases.js';

/**
 * A Microsoft outage, on a clock the test moves (shared with the sandbox, whose faults end on it):
 * Graph answers 503 with Retry-After: 120 for 20 minutes, and for 10 of them the token endpoint
 * answers 503 too (AADSTS90006, without Retry-After, as Entra's 5xx come). Meanwhile messages are
 * submitted and sent, mail arrives and the mailbox is looked at, and connections come due for
 * refresh, each use-case driven by a model of its queue and timer. Access tokens live 4 minutes
 * here, so every send and look needs one from Microsoft (msal renews what expires within 5).
 *
 * Nothing may fail for good: messages are deferred (never failed), connections stay connected
 * (never needs_reauth or degraded), looks are retried; and after the outage every message is sent
 * once, every received message is emitted once, and every connection is refreshed.
 */

const CUSTOMER = `outage-${String(process.pid)}`;
const MINUTE = 60_000;
const clock = new Clock();
let env: ConnectEnvironment;
let kit: SendTestKit;
let contoso: Directory;
let parts: SendParts;

beforeAll(async () => {
  env = await startConnectEnvironment({
    storageConnectionString: inject('storageConnectionString'),
    env: { ALLOW_ROPC: 'true', 'AzureWebJobs.refresh-timer.Disabled': 'true' },
    sandbox: { now: () => clock.ms(), lifetimes: { accessTokenSeconds: 240 } },
  });
  kit = await sendTestKit(env);
  contoso = await env.createDirectory('Contoso Outage');
  await env.sandbox.control.grantConsent(contoso.tenant.id, { clientId: env.clientId });
  parts = sendParts(env);
}, 60_000);

afterAll(async () => {
  await env.sandbox.control.failGraphRequests({ status: 503, count: 0 });
  await env.sandbox.control.failTokenRequests({ status: 503, count: 0 });
  await env.stop();
});

/** The app as one instance: its tokens, and the send, look and refresh work its queues bring. */
class App {
  readonly sends = new QueueModel<SendJob>(clock);
  readonly polls = new QueueModel<PollJob>(clock);
  readonly refreshes = new QueueModel<RefreshMessage>(clock);
  readonly identity: IdentityInstance = identityInstance(env, clock, new CrashPlan());
  readonly outcomes = { send: [] as (SendOutcome & { at: number; messageId: string })[], poll: [] as (PollOutcome & { at: number })[], refresh: [] as (RefreshOutcome & { at: number; connectionId: string })[] };
  readonly errors: unknown[] = [];

  async handleNext(): Promise<boolean> {
    const queues = [this.sends, this.polls, this.refreshes] as const;
    const next = Math.min(...queues.map((queue) => queue.nextVisibleAt() ?? Infinity));
    if (next > clock.ms()) return false;
    const plan = new CrashPlan();
    try {
      if (this.sends.nextVisibleAt() === next) {
        const message = this.sends.take();
        if (!message) return false;
        try {
          this.outcomes.send.push({ ...(await sendMessage(sendDeps(env, clock, plan, this.sends, parts, this.identity.tokens), message.job)), at: clock.ms(), messageId: message.job.messageId });
        } catch (error) {
          this.sends.failed(message);
          throw error;
        }
      } else if (this.polls.nextVisibleAt() === next) {
        const message = this.polls.take();
        if (!message) return false;
        try {
          this.outcomes.poll.push({ ...(await receiving(env, clock, plan, this.polls, this.identity.tokens).pollMailbox(message.job)), at: clock.ms() });
        } catch (error) {
          this.polls.failed(message);
          throw error;
        }
      } else {
        const message = this.refreshes.take();
        if (!message) return false;
        try {
          this.outcomes.refresh.push({ ...(await refreshConnection(refreshDeps(env, clock, plan, this.refreshes, this.identity), message.job)), at: clock.ms(), connectionId: message.job.connectionId });
        } catch (error) {
          this.refreshes.failed(message);
          throw error;
        }
      }
    } catch (error) {
      this.errors.push(error);
    }
    return true;
  }

  /** When the next queue message becomes visible. */
  nextAt(): number {
    return Math.min(...[this.sends, this.polls, this.refreshes].map((queue) => queue.nextVisibleAt() ?? Infinity));
  }
}

async function receiveState(mailbox: Mailbox) {
  return (await env.services.repositories.receiveState.get(keys.receiveState(mailbox.customerId, mailbox.connectionId, mailbox.id)))?.value;
}

async function healthOf(connection: Connection) {
  return (await env.services.repositories.connectionHealth.get(keys.connectionHealth(connection.customerId, connection.id)))?.value;
}

async function makeDue(connection: Connection): Promise<void> {
  await env.services.repositories.connectionHealth.update(keys.connectionHealth(connection.customerId, connection.id), (current) =>
    current ? { ...current, dueAt: new Date(clock.ms() - MINUTE).toISOString() } : UNCHANGED,
  );
}

describe('a Microsoft outage: Graph and the token endpoint answer 503 for a while', () => {
  it('defers sends, retries looks and refreshes, changes no connection state; after recovery everything is sent, received and refreshed, once', async () => {
    const active = await kit.delegated(CUSTOMER, contoso.tenant.id, contoso.domain, { send: 'graph', receive: 'graph' });
    const idle = await kit.delegated(CUSTOMER, contoso.tenant.id, contoso.domain, { send: 'graph', receive: 'none' });
    const recipient = `adele@${contoso.domain}`;
    await env.sandbox.control.createUser(contoso.tenant.id, { userPrincipalName: recipient, displayName: 'Adele Vance' });
    const mailbox = await mailboxOf(env, active.connection, active.upn);
    const app = new App();
    const connections = [active.connection, idle.connection];

    // Before the outage: the mailbox is set up (delta polling) and a message goes out.
    expect(await receiving(env, clock, new CrashPlan(), app.polls, app.identity.tokens).pollMailbox({ customerId: CUSTOMER, connectionId: active.connection.id, mailboxId: mailbox.id, reason: 'manual' })).toMatchObject({ outcome: 'polled', mode: 'polling' });
    const before = await submit(env, clock, parts, active.connection, { to: [recipient], subject: 'Before the outage', text: 'one' });
    expect(await sendMessage(sendDeps(env, clock, new CrashPlan(), app.sends, parts, app.identity.tokens), { customerId: CUSTOMER, messageId: before.id })).toEqual({ outcome: 'sent' });

    const start = clock.ms();
    const messages: OutboundMessage[] = [before];
    const received: string[] = [];
    const sendNow = async (subject: string) => {
      const message = await submit(env, clock, parts, active.connection, { to: [recipient], subject, text: 'sent during an outage' });
      messages.push(message);
      app.sends.push({ customerId: CUSTOMER, messageId: message.id });
    };
    const mailArrives = async (subject: string) => {
      const internetMessageId = `<${randomUUID()}@customer.example>`;
      await env.sandbox.control.injectMessage({ address: active.upn, from: 'ana@customer.example', subject, text: 'Hello', internetMessageId });
      received.push(internetMessageId);
    };
    // What happens when, in minutes from the start of the outage.
    const script: [number, () => Promise<void>][] = [
      [0, () => env.sandbox.control.failGraphRequests({ status: 503, forSeconds: 20 * 60, retryAfterSeconds: 120 })],
      [0, () => sendNow('Graph is down')],
      [1, () => mailArrives('While Graph is down')],
      [5, () => env.sandbox.control.failTokenRequests({ status: 503, forSeconds: 10 * 60 })],
      [6, () => sendNow('Entra is down too')],
      [6, () => mailArrives('While Entra is down')],
      [
        6,
        async () => {
          for (const connection of connections) {
            await makeDue(connection);
            app.refreshes.push({ customerId: CUSTOMER, connectionId: connection.id });
          }
        },
      ],
      [12, () => sendNow('Still down')],
      [17, () => mailArrives('Entra is back, Graph is not')],
    ];
    const timers = [
      {
        // The poll timer: every minute, the mailbox when due and not leased.
        everyMs: MINUTE,
        next: start,
        async tick() {
          const state = await receiveState(mailbox);
          if (!state || (state.lease && Date.parse(state.lease.expiresAt) > clock.ms())) return;
          if (Date.parse(state.dueAt) < clock.ms() + MINUTE) app.polls.push({ customerId: CUSTOMER, connectionId: mailbox.connectionId, mailboxId: mailbox.id, reason: 'schedule' }, Math.max(0, Math.ceil((Date.parse(state.dueAt) - clock.ms()) / 1000)));
        },
      },
      {
        // The refresh timer: every 15 minutes, the connections due.
        everyMs: 15 * MINUTE,
        next: start,
        async tick() {
          for (const connection of connections) {
            const health = await healthOf(connection);
            if (health && Date.parse(health.dueAt) < clock.ms()) app.refreshes.push({ customerId: CUSTOMER, connectionId: connection.id });
          }
        },
      },
    ];

    // During the outage, after every step: no message failed, no connection moved.
    const failedMessages = new Set<string>();
    const states = new Set<string>();
    const end = start + 60 * MINUTE;
    const recovered = start + 20 * MINUTE;
    /** Everything sent, received and refreshed (looked at after the outage, once a minute). */
    const allDone = async () => {
      for (const message of messages) if ((await kit.message(CUSTOMER, message.id)).status !== 'sent') return false;
      for (const connection of connections) if (Date.parse((await healthOf(connection))?.lastSuccessAt ?? '') < start + 15 * MINUTE) return false;
      const emitted = (await env.services.repositories.events.all(CUSTOMER)).filter((event) => event.type === 'message.received').map((event) => event.data.internetMessageId);
      return received.every((id) => emitted.includes(id));
    };
    let done = false;
    while (clock.ms() < end && !done) {
      const nextScript = script.length > 0 ? start + (script[0]?.[0] ?? 0) * MINUTE : Infinity;
      const nextTimer = Math.min(...timers.map((timer) => timer.next));
      const at = Math.min(nextScript, nextTimer, app.nextAt());
      clock.advanceTo(at);
      if (nextScript <= clock.ms()) {
        await script.shift()?.[1]();
      } else if (nextTimer <= clock.ms()) {
        for (const timer of timers.filter((t) => t.next <= clock.ms())) {
          await timer.tick();
          timer.next += timer.everyMs;
        }
        if (clock.ms() > recovered && script.length === 0) done = await allDone();
      } else {
        await app.handleNext();
        for (const message of messages) if ((await kit.message(CUSTOMER, message.id)).status === 'failed') failedMessages.add(message.id);
        for (const connection of connections) states.add((await env.connection(connection)).state);
      }
    }

    expect(done, 'everything sent, received and refreshed within 40 minutes of the recovery').toBe(true);
    expect(app.errors.map(String)).toEqual([]);
    expect([...failedMessages]).toEqual([]);
    expect([...states]).toEqual(['connected']);

    // Sends: deferred while Microsoft was down (Graph's Retry-After honoured, Entra's outage retried), then sent once each.
    expect(app.outcomes.send.map((outcome) => outcome.outcome)).not.toContain('failed');
    for (const message of messages) {
      const final = await kit.message(CUSTOMER, message.id);
      expect(final, message.id).toMatchObject({ status: 'sent' });
      const copies = (await env.sandbox.control.messages(recipient, 'inbox')).filter((m) => m.internetMessageId === message.internetMessageId);
      expect(copies, message.id).toHaveLength(1);
    }
    const graphDown = await kit.message(CUSTOMER, messages[1]?.id ?? '');
    expect(graphDown.attempts[0]).toMatchObject({ outcome: 'deferred', retryAfterSeconds: 120, error: { class: 'throttled', code: 'serviceNotAvailable' } });
    const entraDown = await kit.message(CUSTOMER, messages[2]?.id ?? '');
    expect(entraDown.attempts[0]).toMatchObject({ outcome: 'deferred', error: { class: 'transient', code: 'AADSTS90006' } });
    expect(Date.parse(graphDown.sentAt ?? '')).toBeGreaterThanOrEqual(start + 20 * MINUTE);
    const events = await env.services.repositories.events.all(CUSTOMER);
    for (const message of messages.slice(1)) {
      const types = events.filter((event) => event.data.messageId === message.id).map((event) => event.type);
      expect(types.filter((type) => type === 'message.sent'), message.id).toHaveLength(1);
      expect(types, message.id).not.toContain('message.failed');
      expect(types, message.id).toContain('message.deferred');
    }

    // Looks: retried through the outage (with Graph's Retry-After), every message emitted once afterwards.
    const failedLooks = app.outcomes.poll.flatMap((outcome) => (outcome.outcome === 'failed' ? [outcome] : []));
    expect(new Set(failedLooks.map((outcome) => outcome.code))).toEqual(new Set(['graph_throttled', 'token_transient']));
    for (const id of received) {
      expect(events.filter((event) => event.type === 'message.received' && event.data.internetMessageId === id), id).toHaveLength(1);
    }
    const state = await receiveState(mailbox);
    expect(state).toMatchObject({ consecutiveFailures: 0 });
    expect(state?.lastError).toBeUndefined();

    // Refreshes: failed transiently while Entra was down (and retried with back-off), refreshed after.
    for (const connection of connections) {
      const attempts = app.outcomes.refresh.filter((outcome) => outcome.connectionId === connection.id);
      const failures = attempts.flatMap((outcome) => (outcome.outcome === 'failed' ? [outcome] : []));
      expect(failures.every((outcome) => outcome.kind === 'transient' && outcome.code === 'AADSTS90006')).toBe(true);
      // The idle connection's refresh fails and is retried until Entra is back. The active one's tokens are renewed
      // by its own sends and looks (each needs a token here), whose failures reschedule it: its refresh may find
      // it not due.
      if (connection === idle.connection) {
        expect(failures.length).toBeGreaterThan(0);
        const failed = attempts.findIndex((outcome) => outcome.outcome === 'failed');
        expect(attempts.slice(failed).some((outcome) => outcome.outcome === 'refreshed' && outcome.at >= start + 15 * MINUTE)).toBe(true);
      }
      const health = await healthOf(connection);
      expect(health).toMatchObject({ consecutiveFailures: 0 });
      expect(Date.parse(health?.lastSuccessAt ?? '')).toBeGreaterThanOrEqual(start + 15 * MINUTE);
      const changes = events.filter((event) => event.connectionId === connection.id && event.type === 'connection.state_changed').map((event) => event.data.to);
      expect(changes, 'only the sign-in changed the state').toEqual(['connected']);
    }
    console.log(
      `outage: ${String(app.outcomes.send.length)} send attempts (${String(app.outcomes.send.filter((o) => o.outcome === 'deferred').length)} deferred), ` +
        `${String(app.outcomes.poll.length)} looks (${String(failedLooks.length)} failed), ${String(app.outcomes.refresh.length)} refreshes ` +
        `(${String(app.outcomes.refresh.filter((o) => o.outcome === 'failed').length)} failed); all done ${((clock.ms() - start) / MINUTE).toFixed(0)} minutes after it began, ${((clock.ms() - recovered) / MINUTE).toFixed(0)} after it ended`,
    );
  });
});
