import { decodeJwt } from 'jose';
import type { Cloud } from '../identity/clouds.js';
import type { Connection } from '../domain/connection.js';
import type { CheckCause, CheckStep, CheckStepName, ConnectionCheck } from '../domain/connection-check.js';
import { describeProbeCause, type ProbeProtocol, type ProbeResult } from '../domain/connectivity.js';
import type { Mailbox } from '../domain/mailbox.js';
import type { TokenFailure } from '../domain/token-failure.js';
import { TokenUnavailableError, type AccessToken, type TokenOptions } from '../identity/access-tokens.js';
import type { Resource } from '../identity/scopes.js';
import type { GraphProbeInput, MailProbeInput, SmtpProbeInput } from '../mail/probes.js';

/**
 * The connectivity checker: what an admin or the vendor runs when mail does not flow, or right
 * after the Exchange set-up. For every mailbox of the connection it takes each step real traffic
 * takes: an access token per resource, then the Graph probe, IMAP login and SELECT INBOX, POP3
 * login, SMTP AUTH (and, only when asked, one test message to an address the caller names). Each
 * step's failure is named (domain/connectivity) with what to do about it.
 */

export interface Probes {
  imap(input: MailProbeInput): Promise<ProbeResult<unknown>>;
  pop3(input: MailProbeInput): Promise<ProbeResult<unknown>>;
  smtp(input: SmtpProbeInput): Promise<ProbeResult<unknown>>;
  graph(input: GraphProbeInput): Promise<ProbeResult<unknown>>;
}

export interface CheckDeps {
  tokens: { getAccessToken(connection: Connection, resource: Resource, options?: TokenOptions): Promise<AccessToken> };
  mailboxes(connection: Connection): Promise<Mailbox[]>;
  cloud(appId: string): Cloud;
  probes: Probes;
  vendorName: string;
  now(): Date;
  timeoutMs?: number;
}

export interface CheckOptions {
  /** Send one test message through SMTP to this address (from each SMTP mailbox checked). */
  testMessageTo?: string;
  /** Only these mailboxes (addresses); all of the connection's by default. */
  mailboxes?: readonly string[];
}

const DEFAULT_TIMEOUT_MS = 20_000;

export async function checkConnection(deps: CheckDeps, connection: Connection, options: CheckOptions = {}): Promise<ConnectionCheck> {
  const checkedAt = deps.now().toISOString();
  const all = await deps.mailboxes(connection);
  const wanted = options.mailboxes?.map((address) => address.toLowerCase());
  const mailboxes = wanted ? all.filter((mailbox) => wanted.includes(mailbox.address.toLowerCase())) : all;

  const needs = new Set<Resource>();
  for (const mailbox of mailboxes) {
    if (mailbox.sendTransport === 'graph' || mailbox.receiveTransport === 'graph') needs.add('graph');
    if (mailbox.sendTransport === 'smtp' || ['imap', 'pop3'].includes(mailbox.receiveTransport)) needs.add('outlook');
  }
  const steps: CheckStep[] = [];
  const tokens = new Map<Resource, AccessToken>();
  for (const resource of (['graph', 'outlook'] as const).filter((r) => needs.has(r))) {
    const started = performance.now();
    try {
      // From Microsoft, not a cache: a cached token says nothing about revoked sessions or a consent given a minute ago.
      tokens.set(resource, await deps.tokens.getAccessToken(connection, resource, { fresh: true }));
      steps.push({ step: 'token', resource, outcome: 'ok', durationMs: since(started) });
    } catch (error) {
      if (!(error instanceof TokenUnavailableError)) throw error;
      steps.push({ step: 'token', resource, outcome: 'failed', durationMs: since(started), cause: tokenCause(error.failure) });
    }
  }

  const cloud = deps.cloud(connection.appId);
  for (const mailbox of mailboxes) {
    for (const step of protocolSteps(mailbox)) {
      const resource: Resource = step === 'graph' ? 'graph' : 'outlook';
      const token = tokens.get(resource);
      if (!token) {
        steps.push({ step, mailbox: mailbox.address, outcome: 'skipped', durationMs: 0 });
        continue;
      }
      steps.push(await probe(deps, connection, cloud, mailbox, step, token, options));
    }
  }
  return { connectionId: connection.id, state: connection.state, checkedAt, ok: steps.every((step) => step.outcome === 'ok'), steps };
}

function protocolSteps(mailbox: Mailbox): Exclude<CheckStepName, 'token'>[] {
  const steps: Exclude<CheckStepName, 'token'>[] = [];
  if (mailbox.sendTransport === 'graph' || mailbox.receiveTransport === 'graph') steps.push('graph');
  if (mailbox.receiveTransport === 'imap') steps.push('imap');
  if (mailbox.receiveTransport === 'pop3') steps.push('pop3');
  if (mailbox.sendTransport === 'smtp') steps.push('smtp');
  return steps;
}

async function probe(
  deps: CheckDeps,
  connection: Connection,
  cloud: Cloud,
  mailbox: Mailbox,
  step: Exclude<CheckStepName, 'token'>,
  token: AccessToken,
  options: CheckOptions,
): Promise<CheckStep> {
  const timeoutMs = deps.timeoutMs ?? DEFAULT_TIMEOUT_MS;
  // XOAUTH2's user is the mailbox opened: the user's own, or a shared one their token (or the app's) may open.
  const mail = { user: mailbox.address, accessToken: token.token, timeoutMs, mode: connection.mode };
  let result: ProbeResult<unknown>;
  if (step === 'graph' && connection.mode === 'application' && mailbox.receiveTransport !== 'graph') return appSendPermission(mailbox, token);
  if (step === 'graph') {
    const own = connection.account?.upn.toLowerCase() === mailbox.address.toLowerCase();
    const receive = mailbox.receiveTransport === 'graph';
    // A user's token may not look other users up (User.Read): for a mailbox it only sends from, the
    // probe proves the user's own access, and the right to send as that mailbox shows at the first send.
    const target = connection.mode === 'delegated' && (own || !receive) ? 'me' : mailbox.address;
    result = await deps.probes.graph({ graphUrl: cloud.graphUrl, mailbox: target, accessToken: token.token, receive, timeoutMs });
  } else if (step === 'imap') result = await deps.probes.imap({ ...mail, ...cloud.imap });
  else if (step === 'pop3') result = await deps.probes.pop3({ ...mail, ...cloud.pop3 });
  else {
    result = await deps.probes.smtp({
      ...mail,
      ...cloud.smtp,
      ...(options.testMessageTo !== undefined && { testMessageTo: options.testMessageTo, vendorName: deps.vendorName }),
    });
  }
  const base = { step, mailbox: mailbox.address, durationMs: Math.round(result.durationMs) };
  if (result.ok) return { ...base, outcome: 'ok', ...(isRecord(result.detail) && { detail: result.detail }) };
  const graph = new URL(cloud.graphUrl);
  const endpoint = step === 'graph' ? `${graph.hostname} port ${graph.port || '443'}` : `${cloud[step].host} port ${String(cloud[step].port)}`;
  const described = describeProbeCause(result.cause, { protocol: step satisfies ProbeProtocol, mode: connection.mode, mailbox: mailbox.address, endpoint });
  return {
    ...base,
    outcome: 'failed',
    cause: { code: result.cause, ...described },
    ...(result.serverText !== undefined && { serverText: result.serverText }),
    ...(result.errorCode !== undefined && { errorCode: result.errorCode }),
  };
}

/**
 * An app that only sends through Graph holds Mail.Send and nothing that reads a mailbox, so no
 * Graph request can show more than the token itself: the roles Microsoft granted in it. Whether
 * an application access policy lets it send as this mailbox only a send shows.
 */
function appSendPermission(mailbox: Mailbox, token: AccessToken): CheckStep {
  const roles = rolesOf(token.token);
  const base = { step: 'graph' as const, mailbox: mailbox.address, durationMs: 0, detail: { checked: 'app roles in the token', roles } };
  if (roles.includes('Mail.Send')) return { ...base, outcome: 'ok' };
  return {
    ...base,
    outcome: 'failed',
    cause: {
      code: 'consent_missing',
      explanation: "The app's token for the tenant does not carry the Mail.Send application permission, so Graph will refuse to send.",
      nextStep: "An administrator of the customer's tenant grants the app's permissions again (admin consent).",
    },
  };
}

function rolesOf(jwt: string): string[] {
  try {
    const { roles } = decodeJwt(jwt) as { roles?: unknown };
    return Array.isArray(roles) ? roles.filter((role): role is string => typeof role === 'string') : [];
  } catch {
    return [];
  }
}

/** A token failure in the checker's words: what is missing, and Microsoft's own code. */
function tokenCause(failure: TokenFailure): CheckCause {
  const code =
    failure.code === 'AADSTS500011' || failure.code === 'AADSTS650052'
      ? 'exchange_service_principal_missing'
      : { reauth: 'sign_in_expired', consent: 'consent_missing', policy: 'tenant_policy', app_config: 'app_misconfigured', transient: 'unavailable' }[failure.kind];
  return { code, explanation: failure.explanation, nextStep: failure.nextStep, microsoftCode: failure.code };
}

function isRecord(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

function since(started: number): number {
  return Math.round(performance.now() - started);
}
