import { describe, expect, it } from 'vitest';
import { classifySendFailure, retryDelayMs, type GraphFailureSignal, type SmtpFailureSignal } from '../../src/domain/send-failure.js';

/** What a failed send attempt means (microsoft.md §4.3, §5.1, §6): one case per answer the connector decides on. */

const graph = (status: number, rest: Partial<GraphFailureSignal> = {}): GraphFailureSignal => ({ transport: 'graph', status, sending: true, ...rest });
const smtp = (responseCode: number | undefined, response?: string, rest: Partial<SmtpFailureSignal> = {}): SmtpFailureSignal => ({
  transport: 'smtp',
  ...(responseCode !== undefined && { responseCode }),
  ...(response !== undefined && { response }),
  code: responseCode === undefined ? 'ECONNECTION' : 'EENVELOPE',
  command: 'RCPT TO',
  ...rest,
});

describe('Graph', () => {
  describe('throttling', () => {
    it('429 with Retry-After: throttled for that long', () => {
      expect(classifySendFailure(graph(429, { code: 'ApplicationThrottled', retryAfterSeconds: 17 }))).toEqual({
        error: { class: 'throttled', code: 'ApplicationThrottled', message: expect.stringMatching(/throttling.*HTTP 429/) as unknown },
        retryAfterSeconds: 17,
        outcomeUnknown: false,
      });
    });

    it('429 without Retry-After: throttled for 30 seconds', () => {
      expect(classifySendFailure(graph(429))).toMatchObject({ error: { class: 'throttled', code: 'http_429' }, retryAfterSeconds: 30, outcomeUnknown: false });
    });

    it('429 with Retry-After: 0 keeps the 0 (Microsoft said so)', () => {
      expect(classifySendFailure(graph(429, { retryAfterSeconds: 0 }))).toMatchObject({ error: { class: 'throttled' }, retryAfterSeconds: 0 });
    });

    it('503 with Retry-After: throttled for that long', () => {
      expect(classifySendFailure(graph(503, { retryAfterSeconds: 120 }))).toMatchObject({ error: { class: 'throttled', code: 'http_503' }, retryAfterSeconds: 120, outcomeUnknown: false });
    });

    it('429 on the sending request: the request was refused, so the outcome is known', () => {
      expect(classifySendFailure(graph(429, { sending: true })).outcomeUnknown).toBe(false);
      expect(classifySendFailure(graph(429, { sending: false })).outcomeUnknown).toBe(false);
    });
  });

  describe('server errors', () => {
    it('503 without Retry-After: transient, and Exchange did not take the message', () => {
      const failure = classifySendFailure(graph(503));
      expect(failure).toMatchObject({ error: { class: 'transient', code: 'http_503' }, outcomeUnknown: false });
      expect(failure).not.toHaveProperty('retryAfterSeconds');
    });

    it.each([500, 502, 504])('%i on the sending request: transient, and the message may have gone', (status) => {
      expect(classifySendFailure(graph(status, { sending: true }))).toMatchObject({ error: { class: 'transient', code: `http_${String(status)}` }, outcomeUnknown: true });
    });

    it.each([500, 502, 504])('%i on a preparation request (draft, upload): transient, nothing was sent', (status) => {
      expect(classifySendFailure(graph(status, { sending: false }))).toMatchObject({ error: { class: 'transient' }, outcomeUnknown: false });
    });

    it('408 on the sending request: transient, outcome unknown', () => {
      expect(classifySendFailure(graph(408, { sending: true }))).toMatchObject({ error: { class: 'transient' }, outcomeUnknown: true });
    });

    it('keeps Graph\'s code and message when it gave them', () => {
      const failure = classifySendFailure(graph(500, { code: 'ErrorInternalServerTransientError', message: 'Try again later.' }));
      expect(failure.error.code).toBe('ErrorInternalServerTransientError');
      expect(failure.error.message).toContain('Graph said: "Try again later."');
    });
  });

  it('401: transient (the next attempt gets a new token), outcome known', () => {
    expect(classifySendFailure(graph(401, { code: 'InvalidAuthenticationToken' }))).toMatchObject({
      error: { class: 'transient', code: 'InvalidAuthenticationToken', message: expect.stringMatching(/new one/) as unknown },
      outcomeUnknown: false,
    });
  });

  describe('permanent refusals', () => {
    it('403 ErrorAccessDenied: permanent, with what to check', () => {
      const failure = classifySendFailure(graph(403, { code: 'ErrorAccessDenied', message: 'Access is denied. Check credentials and try again.' }));
      expect(failure).toMatchObject({ error: { class: 'permanent', code: 'ErrorAccessDenied' }, outcomeUnknown: false });
      expect(failure.error.nextStep).toMatch(/Mail\.Send/);
      expect(failure.error.nextStep).toMatch(/application access policy|RBAC/);
      expect(failure.error.message).toContain('Access is denied.');
    });

    it('a 403 without a code is an access refusal too', () => {
      expect(classifySendFailure(graph(403))).toMatchObject({ error: { class: 'permanent', code: 'http_403', nextStep: expect.stringMatching(/Mail\.Send/) as unknown } });
    });

    it('ErrorSendAsDenied: permanent, and the next step is to grant Send As', () => {
      const failure = classifySendFailure(graph(403, { code: 'ErrorSendAsDenied' }));
      expect(failure).toMatchObject({ error: { class: 'permanent', code: 'ErrorSendAsDenied' }, outcomeUnknown: false });
      expect(failure.error.nextStep).toMatch(/Send As/);
      expect(failure.error.nextStep).toMatch(/Add-RecipientPermission/);
    });

    it('404: permanent, the mailbox is not there', () => {
      expect(classifySendFailure(graph(404, { code: 'ErrorItemNotFound' }))).toMatchObject({ error: { class: 'permanent', nextStep: expect.stringMatching(/mailbox/) as unknown } });
    });

    it('413: permanent, the message is too large', () => {
      expect(classifySendFailure(graph(413))).toMatchObject({ error: { class: 'permanent', code: 'http_413', message: expect.stringMatching(/too large/) as unknown } });
    });

    it('400 ErrorInvalidRecipients: permanent, correct the recipients', () => {
      expect(classifySendFailure(graph(400, { code: 'ErrorInvalidRecipients' }))).toMatchObject({
        error: { class: 'permanent', code: 'ErrorInvalidRecipients', nextStep: expect.stringMatching(/recipients/) as unknown },
        outcomeUnknown: false,
      });
    });

    it('any other 4xx: permanent, with the status', () => {
      expect(classifySendFailure(graph(400, { code: 'ErrorInvalidRequest' }))).toMatchObject({ error: { class: 'permanent', message: expect.stringMatching(/HTTP 400/) as unknown } });
    });

    it.each([403, 404, 413, 400])('%i is never "outcome unknown", sending or not', (status) => {
      expect(classifySendFailure(graph(status, { sending: true })).outcomeUnknown).toBe(false);
    });
  });
});

describe('SMTP', () => {
  it('421: transient, the server closed the connection', () => {
    expect(classifySendFailure(smtp(421, '421 4.3.2 Service not available, closing transmission channel'))).toMatchObject({
      error: { class: 'transient', code: 'smtp_421_4.3.2' },
      outcomeUnknown: false,
    });
  });

  it('451 4.7.500 server busy: throttled for 60 seconds', () => {
    expect(classifySendFailure(smtp(451, '451 4.7.500 Server busy. Please try again later from [40.107.1.2]. (S77719) [AM0PR01MB1234.eurprd01.prod.exchangelabs.com]'))).toEqual({
      error: { class: 'throttled', code: 'smtp_451_4.7.500', message: expect.stringMatching(/throttling/) as unknown },
      retryAfterSeconds: 60,
      outcomeUnknown: false,
    });
  });

  it('554 5.2.0 SubmissionQuotaExceeded: throttled, though 5xx in form', () => {
    const reply = '554 5.2.0 STOREDRV.Submission.Exception:SubmissionQuotaExceededException; Failed to process message due to a permanent exception with message [BeginDiagnosticData]...';
    expect(classifySendFailure(smtp(554, reply, { command: 'DATA' }))).toMatchObject({ error: { class: 'throttled', code: 'smtp_554_5.2.0' }, retryAfterSeconds: 60, outcomeUnknown: false });
  });

  it('432 4.3.2 concurrent connections limit exceeded: throttled', () => {
    expect(classifySendFailure(smtp(432, '432 4.3.2 STOREDRV.ClientSubmit; sender thread limit exceeded'))).toMatchObject({ error: { class: 'throttled' }, retryAfterSeconds: 60 });
  });

  it('550 5.1.1: permanent, the recipient does not exist', () => {
    expect(classifySendFailure(smtp(550, '550 5.1.1 RESOLVER.ADR.RecipNotFound; not found'))).toMatchObject({
      error: { class: 'permanent', code: 'smtp_550_5.1.1', nextStep: expect.stringMatching(/recipient/) as unknown },
      outcomeUnknown: false,
    });
  });

  it('535 5.7.139: permanent, SMTP AUTH is disabled, and the next step names Set-CASMailbox', () => {
    const failure = classifySendFailure(smtp(535, '535 5.7.139 Authentication unsuccessful, SmtpClientAuthentication is disabled for the Tenant.', { code: 'EAUTH', command: 'AUTH XOAUTH2' }));
    expect(failure).toMatchObject({ error: { class: 'permanent', code: 'smtp_535_5.7.139' }, outcomeUnknown: false });
    expect(failure.error.nextStep).toMatch(/Set-CASMailbox/);
    expect(failure.error.nextStep).toMatch(/SmtpClientAuthenticationDisabled \$false/);
  });

  it('535 5.7.3: permanent, the token was refused, and the next step is about the service principal', () => {
    const failure = classifySendFailure(smtp(535, '535 5.7.3 Authentication unsuccessful [SN4PR0501CA0054.namprd05.prod.outlook.com]', { code: 'EAUTH', command: 'AUTH XOAUTH2' }));
    expect(failure).toMatchObject({ error: { class: 'permanent', code: 'smtp_535_5.7.3' }, outcomeUnknown: false });
    expect(failure.error.nextStep).toMatch(/New-ServicePrincipal/);
    expect(failure.error.nextStep).not.toMatch(/Set-CASMailbox/);
  });

  it('552: permanent, the message is too large', () => {
    expect(classifySendFailure(smtp(552, '552 5.3.4 Message size exceeds fixed maximum message size', { command: 'DATA' }))).toMatchObject({
      error: { class: 'permanent', message: expect.stringMatching(/larger/) as unknown },
    });
    expect(classifySendFailure(smtp(552, '552 Too big'))).toMatchObject({ error: { class: 'permanent', code: 'smtp_552' } });
  });

  it('SendAsDenied: permanent, grant Send As', () => {
    const reply = '554 5.2.0 STOREDRV.Submission.Exception:SendAsDeniedException.MapiExceptionSendAsDenied; Failed to process message';
    expect(classifySendFailure(smtp(554, reply, { command: 'DATA' }))).toMatchObject({ error: { class: 'permanent', nextStep: expect.stringMatching(/Send As/) as unknown } });
  });

  it('any other 4xx: transient; any other 5xx: permanent', () => {
    expect(classifySendFailure(smtp(450, '450 4.2.1 Mailbox busy'))).toMatchObject({ error: { class: 'transient' }, outcomeUnknown: false });
    expect(classifySendFailure(smtp(554, '554 5.6.0 Message rejected'))).toMatchObject({ error: { class: 'permanent', code: 'smtp_554_5.6.0' } });
  });

  it('no reply during DATA: transient, and the message may have gone', () => {
    expect(classifySendFailure(smtp(undefined, undefined, { code: 'ETIMEDOUT', command: 'DATA' }))).toMatchObject({
      error: { class: 'transient', code: 'smtp_etimedout', message: expect.stringMatching(/ETIMEDOUT during DATA/) as unknown },
      outcomeUnknown: true,
    });
    expect(classifySendFailure(smtp(undefined, undefined, { code: 'ESOCKET', command: 'MESSAGE' })).outcomeUnknown).toBe(true);
  });

  it('ECONNECTION while connecting: transient, nothing was sent', () => {
    expect(classifySendFailure(smtp(undefined, undefined, { code: 'ECONNECTION', command: 'CONN' }))).toMatchObject({
      error: { class: 'transient', code: 'smtp_econnection' },
      outcomeUnknown: false,
    });
  });

  it('no reply and no code: transient, outcome known before DATA', () => {
    expect(classifySendFailure({ transport: 'smtp' })).toMatchObject({ error: { class: 'transient', code: 'smtp_error' }, outcomeUnknown: false });
  });

  it('quotes the server\'s reply, cut at 300 characters', () => {
    const reply = `550 5.1.1 ${'x'.repeat(1000)}`;
    const { message } = classifySendFailure(smtp(550, reply)).error;
    expect(message).toContain('The server said: "550 5.1.1 x');
    expect(message.length).toBeLessThan(450);
  });
});

describe('network', () => {
  it('after the sending request was made: transient, outcome unknown', () => {
    expect(classifySendFailure({ transport: 'network', code: 'ECONNRESET', message: 'socket hang up', sending: true })).toEqual({
      error: { class: 'transient', code: 'network_error', message: 'The connection to Microsoft failed: ECONNRESET.' },
      outcomeUnknown: true,
    });
  });

  it('before it: transient, outcome known', () => {
    expect(classifySendFailure({ transport: 'network', message: 'getaddrinfo ENOTFOUND graph.microsoft.com', sending: false })).toEqual({
      error: { class: 'transient', code: 'network_error', message: 'The connection to Microsoft failed: getaddrinfo ENOTFOUND graph.microsoft.com.' },
      outcomeUnknown: false,
    });
  });
});

describe('retryDelayMs', () => {
  const MINUTE = 60_000;
  const schedule: [number, number][] = [
    [1, 1],
    [2, 2],
    [3, 5],
    [4, 10],
    [5, 20],
    [6, 30],
    [7, 60],
    [8, 60],
    [20, 60],
    [1000, 60],
  ];

  it.each(schedule)('after %i failed attempts: %i minutes with the middle of the jitter', (attempts, minutes) => {
    expect(retryDelayMs(attempts, () => 0.5)).toBe(minutes * MINUTE);
  });

  it.each(schedule)('after %i failed attempts: within ±10 %% of %i minutes', (attempts, minutes) => {
    expect(retryDelayMs(attempts, () => 0)).toBe(Math.round(minutes * MINUTE * 0.9));
    expect(retryDelayMs(attempts, () => 1)).toBe(Math.round(minutes * MINUTE * 1.1));
    for (let i = 0; i < 50; i++) {
      const delay = retryDelayMs(attempts);
      expect(delay).toBeGreaterThanOrEqual(minutes * MINUTE * 0.9);
      expect(delay).toBeLessThanOrEqual(minutes * MINUTE * 1.1);
    }
  });

  it('never grows past an hour and never shrinks as failures add up', () => {
    let previous = 0;
    for (let attempts = 1; attempts <= 50; attempts++) {
      const delay = retryDelayMs(attempts, () => 0.5);
      expect(delay).toBeGreaterThanOrEqual(previous);
      expect(delay).toBeLessThanOrEqual(60 * MINUTE);
      previous = delay;
    }
  });

  it('treats 0 (or less) failed attempts like the first', () => {
    expect(retryDelayMs(0, () => 0.5)).toBe(MINUTE);
    expect(retryDelayMs(-3, () => 0.5)).toBe(MINUTE);
  });

  it('spreads messages that failed together', () => {
    const delays = new Set(Array.from({ length: 20 }, (_, i) => retryDelayMs(3, () => i / 20)));
    expect(delays.size).toBe(20);
  });
});
