import { describe, expect, it } from 'vitest';
import {
  PROBE_CAUSES,
  describeProbeCause,
  graphProbeCause,
  imapProbeCause,
  pop3ProbeCause,
  smtpProbeCause,
  type GraphProbeFailure,
  type MailProbeFailure,
  type ProbeCause,
  type ProbeProtocol,
} from '../../src/domain/connectivity.js';

// Exchange Online's replies, word for word (microsoft.md §4.2–§4.4, src/pages/exchange-app-setup.ts).
const EXCHANGE = {
  imapNotConnected: 'BAD User is authenticated but not connected.',
  imapAuthenticateFailed: 'NO AUTHENTICATE failed.',
  imapThrottled: 'BAD Request is throttled. Suggested Backoff Time: 92415 milliseconds',
  pop3AuthenticationFailure: '-ERR Authentication failure: unknown user name or bad password.',
  smtpAuthDisabledTenant:
    '535 5.7.139 Authentication unsuccessful, SmtpClientAuthentication is disabled for the Tenant. Visit https://aka.ms/smtp_auth_disabled for more information.',
  smtpAuthDisabledMailbox:
    '535 5.7.139 Authentication unsuccessful, SmtpClientAuthentication is disabled for the Mailbox. Visit https://aka.ms/smtp_auth_disabled for more information.',
  smtpAuthenticationUnsuccessful: '535 5.7.3 Authentication unsuccessful [SN4PR0601CA0001.namprd06.prod.outlook.com 2026-01-27T10:00:00.000Z 08DE5C1A2B3C4D5E]',
  smtpTls10: '421 4.7.66 TLS 1.0 and 1.1 are not supported. Please upgrade/update your client to support TLS 1.2.',
  smtpSendAsDenied:
    '554 5.2.252 SendAsDenied; alice@contoso.com not allowed to send as support@contoso.com; STOREDRV.Submission.Exception:SendAsDeniedException.MapiExceptionSendAsDenied',
  smtpNoSendAsPermission: '550 5.7.60 SMTP; Client does not have permissions to send as this sender',
  smtpRecipientNotFound: '550 5.1.10 RESOLVER.ADR.RecipientNotFound; Recipient not found by SMTP address lookup',
  smtpThreadLimit: '432 4.3.2 STOREDRV.ClientSubmit; sender thread limit exceeded',
  smtpNotAuthenticated: '530 5.7.57 Client not authenticated to send mail.',
};

function mail(overrides: Partial<MailProbeFailure>): MailProbeFailure {
  return { stage: 'authenticate', mode: 'delegated', ...overrides };
}

const tested = new Set<ProbeCause>();
function cause(name: ProbeCause, test: () => void): void {
  tested.add(name);
  it(name, test);
}

describe('naming why a probe failed', () => {
  cause('network_unreachable', () => {
    for (const errorCode of ['ECONNREFUSED', 'ENOTFOUND', 'EAI_AGAIN', 'EHOSTUNREACH', 'ENETUNREACH', 'ETIMEDOUT']) {
      expect(imapProbeCause(mail({ stage: 'connect', errorCode }))).toBe('network_unreachable');
      expect(pop3ProbeCause(mail({ stage: 'connect', errorCode }))).toBe('network_unreachable');
      expect(smtpProbeCause(mail({ stage: 'connect', errorCode }))).toBe('network_unreachable');
      expect(graphProbeCause({ errorCode })).toBe('network_unreachable');
    }
    // The libraries' own names for timeouts: imapflow, nodemailer, fetch.
    expect(imapProbeCause(mail({ stage: 'connect', errorCode: 'CONNECT_TIMEOUT' }))).toBe('network_unreachable');
    expect(imapProbeCause(mail({ stage: 'connect', errorCode: 'GREETING_TIMEOUT' }))).toBe('network_unreachable');
    expect(smtpProbeCause(mail({ stage: 'connect', errorCode: 'EDNS' }))).toBe('network_unreachable');
    expect(graphProbeCause({ errorCode: 'TimeoutError' })).toBe('network_unreachable');
    expect(graphProbeCause({ errorCode: 'UND_ERR_CONNECT_TIMEOUT' })).toBe('network_unreachable');
    // A timeout is a timeout wherever it strikes.
    expect(pop3ProbeCause(mail({ stage: 'authenticate', errorCode: 'ETIMEDOUT' }))).toBe('network_unreachable');
    // A connection dropped before the greeting is the network too.
    expect(pop3ProbeCause(mail({ stage: 'connect', errorCode: 'ECONNRESET' }))).toBe('network_unreachable');
  });

  cause('tls_failed', () => {
    for (const errorCode of [
      'CERT_HAS_EXPIRED',
      'UNABLE_TO_VERIFY_LEAF_SIGNATURE',
      'SELF_SIGNED_CERT_IN_CHAIN',
      'DEPTH_ZERO_SELF_SIGNED_CERT',
      'ERR_TLS_CERT_ALTNAME_INVALID',
      'ERR_SSL_WRONG_VERSION_NUMBER',
    ]) {
      expect(imapProbeCause(mail({ stage: 'connect', errorCode }))).toBe('tls_failed');
      expect(pop3ProbeCause(mail({ stage: 'connect', errorCode }))).toBe('tls_failed');
      expect(smtpProbeCause(mail({ stage: 'connect', errorCode }))).toBe('tls_failed');
      expect(graphProbeCause({ errorCode })).toBe('tls_failed');
    }
    // nodemailer, when STARTTLS fails; Exchange, to an old TLS version.
    expect(smtpProbeCause(mail({ stage: 'connect', errorCode: 'ETLS' }))).toBe('tls_failed');
    expect(smtpProbeCause(mail({ stage: 'connect', errorCode: 'ECONNECTION', serverText: EXCHANGE.smtpTls10 }))).toBe('tls_failed');
  });

  cause('smtp_auth_disabled', () => {
    for (const mode of ['delegated', 'application'] as const) {
      expect(smtpProbeCause(mail({ mode, errorCode: 'EAUTH', serverText: EXCHANGE.smtpAuthDisabledTenant }))).toBe('smtp_auth_disabled');
      expect(smtpProbeCause(mail({ mode, errorCode: 'EAUTH', serverText: EXCHANGE.smtpAuthDisabledMailbox }))).toBe('smtp_auth_disabled');
    }
  });

  cause('authentication_unsuccessful', () => {
    for (const mode of ['delegated', 'application'] as const) {
      expect(smtpProbeCause(mail({ mode, errorCode: 'EAUTH', serverText: EXCHANGE.smtpAuthenticationUnsuccessful }))).toBe('authentication_unsuccessful');
    }
    expect(smtpProbeCause(mail({ errorCode: 'EAUTH', serverText: '535 5.7.3 Authentication unsuccessful' }))).toBe('authentication_unsuccessful');
  });

  cause('not_connected', () => {
    for (const mode of ['delegated', 'application'] as const) {
      // After AUTHENTICATE's OK, to the next command; or as the reason of the BYE that follows.
      expect(imapProbeCause(mail({ mode, stage: 'mailbox', serverText: EXCHANGE.imapNotConnected }))).toBe('not_connected');
      expect(imapProbeCause(mail({ mode, stage: 'mailbox', errorCode: 'NoConnection', serverText: `BYE ${EXCHANGE.imapNotConnected.slice(4)}` }))).toBe(
        'not_connected',
      );
      expect(pop3ProbeCause(mail({ mode, stage: 'mailbox', serverText: '-ERR User is authenticated but not connected.' }))).toBe('not_connected');
    }
  });

  cause('exchange_service_principal_missing', () => {
    expect(imapProbeCause(mail({ mode: 'application', serverText: EXCHANGE.imapAuthenticateFailed }))).toBe('exchange_service_principal_missing');
    expect(pop3ProbeCause(mail({ mode: 'application', serverText: EXCHANGE.pop3AuthenticationFailure }))).toBe('exchange_service_principal_missing');
  });

  cause('mailbox_permission_missing', () => {
    for (const mode of ['delegated', 'application'] as const) {
      expect(smtpProbeCause(mail({ mode, stage: 'send', command: 'DATA', serverText: EXCHANGE.smtpSendAsDenied }))).toBe('mailbox_permission_missing');
      expect(smtpProbeCause(mail({ mode, stage: 'send', command: 'MAIL FROM', serverText: EXCHANGE.smtpNoSendAsPermission }))).toBe('mailbox_permission_missing');
      // Signed in, but the INBOX or the maildrop would not open.
      expect(imapProbeCause(mail({ mode, stage: 'mailbox', serverText: 'NO [NOPERM] Permission denied' }))).toBe('mailbox_permission_missing');
      expect(pop3ProbeCause(mail({ mode, stage: 'mailbox', serverText: '-ERR Permission denied' }))).toBe('mailbox_permission_missing');
    }
  });

  cause('authentication_failed', () => {
    expect(imapProbeCause(mail({ serverText: EXCHANGE.imapAuthenticateFailed }))).toBe('authentication_failed');
    expect(imapProbeCause(mail({ serverText: 'NO [AUTHENTICATIONFAILED] Authentication failed.' }))).toBe('authentication_failed');
    expect(pop3ProbeCause(mail({ serverText: EXCHANGE.pop3AuthenticationFailure }))).toBe('authentication_failed');
    expect(pop3ProbeCause(mail({ serverText: '-ERR [AUTH] Authentication failed.' }))).toBe('authentication_failed');
    // Postfix, and Exchange to a submission without AUTH; neither says more, whoever's token it was.
    for (const mode of ['delegated', 'application'] as const) {
      expect(smtpProbeCause(mail({ mode, errorCode: 'EAUTH', serverText: '535 5.7.8 Error: authentication failed: (reason unavailable)' }))).toBe(
        'authentication_failed',
      );
      expect(smtpProbeCause(mail({ mode, stage: 'send', command: 'MAIL FROM', serverText: EXCHANGE.smtpNotAuthenticated }))).toBe('authentication_failed');
    }
  });

  cause('recipient_rejected', () => {
    expect(smtpProbeCause(mail({ stage: 'send', errorCode: 'EENVELOPE', command: 'RCPT TO', serverText: EXCHANGE.smtpRecipientNotFound }))).toBe(
      'recipient_rejected',
    );
    expect(smtpProbeCause(mail({ stage: 'send', errorCode: 'EENVELOPE', command: 'RCPT TO', serverText: '550 5.1.1 <nobody@contoso.test>: Recipient address rejected' }))).toBe(
      'recipient_rejected',
    );
  });

  cause('consent_missing', () => {
    expect(graphProbeCause({ status: 403, graphCode: 'ErrorAccessDenied', message: 'Access is denied. Check credentials and try again.' })).toBe('consent_missing');
    expect(graphProbeCause({ status: 403, graphCode: 'Authorization_RequestDenied', message: 'Insufficient privileges to complete the operation.' })).toBe(
      'consent_missing',
    );
  });

  cause('access_denied', () => {
    // An application access policy (or RBAC for Applications scope) that leaves the mailbox out (microsoft.md §5.3).
    expect(graphProbeCause({ status: 403, graphCode: 'ErrorAccessDenied', message: 'Access to OData is disabled.' })).toBe('access_denied');
    expect(graphProbeCause({ status: 403 })).toBe('access_denied');
  });

  cause('mailbox_not_found', () => {
    const cases: GraphProbeFailure[] = [
      { status: 404, graphCode: 'ErrorInvalidUser', message: "The requested user 'nobody@contoso.com' is invalid." },
      { status: 404, graphCode: 'MailboxNotEnabledForRESTAPI', message: 'The mailbox is either inactive, soft-deleted, or is hosted on-premise.' },
      { status: 404, graphCode: 'Request_ResourceNotFound', message: "Resource 'nobody@contoso.com' does not exist or one of its queried reference-property objects are not present." },
      { status: 404 },
    ];
    for (const failure of cases) expect(graphProbeCause(failure)).toBe('mailbox_not_found');
  });

  cause('invalid_token', () => {
    expect(graphProbeCause({ status: 401, graphCode: 'InvalidAuthenticationToken', message: 'Access token has expired or is not yet valid.' })).toBe('invalid_token');
    expect(graphProbeCause({ status: 401 })).toBe('invalid_token');
  });

  cause('throttled', () => {
    expect(graphProbeCause({ status: 429, graphCode: 'ApplicationThrottled', message: 'Application is over its MailboxConcurrency limit.' })).toBe('throttled');
    expect(graphProbeCause({ status: 429 })).toBe('throttled');
    expect(imapProbeCause(mail({ stage: 'mailbox', serverText: EXCHANGE.imapThrottled }))).toBe('throttled');
    expect(imapProbeCause(mail({ stage: 'mailbox', errorCode: 'ETHROTTLE' }))).toBe('throttled');
    expect(pop3ProbeCause(mail({ serverText: '-ERR [LOGIN-DELAY] Logins are rate limited' }))).toBe('throttled');
    expect(smtpProbeCause(mail({ stage: 'send', command: 'DATA', serverText: EXCHANGE.smtpThreadLimit }))).toBe('throttled');
  });

  cause('unavailable', () => {
    for (const status of [500, 502, 503, 504]) expect(graphProbeCause({ status, graphCode: 'ServiceNotAvailable' })).toBe('unavailable');
    expect(smtpProbeCause(mail({ stage: 'connect', serverText: '421 4.3.2 Service not available, closing transmission channel' }))).toBe('unavailable');
    expect(pop3ProbeCause(mail({ serverText: '-ERR [SYS/TEMP] Internal error occurred.' }))).toBe('unavailable');
    expect(imapProbeCause(mail({ stage: 'connect', serverText: 'BYE Server Unavailable. 15' }))).toBe('unavailable');
    // Signed in, then the connection broke: the server gave up, the network was there.
    expect(imapProbeCause(mail({ stage: 'mailbox', errorCode: 'ECONNRESET' }))).toBe('unavailable');
  });

  cause('unknown', () => {
    expect(imapProbeCause(mail({ stage: 'connect', serverText: 'BAD Unexpected greeting' }))).toBe('unknown');
    expect(smtpProbeCause(mail({ stage: 'send', command: 'DATA', serverText: '554 5.6.0 Invalid message content' }))).toBe('unknown');
    expect(graphProbeCause({ status: 400, graphCode: 'BadRequest', message: '/me request is only valid with delegated authentication flow.' })).toBe('unknown');
    expect(graphProbeCause({})).toBe('unknown');
  });

  it('has a test for every cause', () => {
    expect([...tested].sort()).toEqual([...PROBE_CAUSES].sort());
  });
});

describe('describeProbeCause', () => {
  const protocols: ProbeProtocol[] = ['imap', 'pop3', 'smtp', 'graph'];

  it('explains every cause and says what to do, for every protocol and mode', () => {
    for (const name of PROBE_CAUSES) {
      for (const protocol of protocols) {
        for (const mode of ['delegated', 'application'] as const) {
          const { explanation, nextStep } = describeProbeCause(name, { protocol, mode, mailbox: 'support@contoso.com' });
          expect(explanation, `${name} ${protocol} ${mode}`).toMatch(/^[A-Z].*\.$/s);
          expect(nextStep, `${name} ${protocol} ${mode}`).toMatch(/^[A-Z].*\.$/s);
        }
      }
    }
  });

  it('gives the PowerShell the customer admin runs, naming the mailbox', () => {
    const mailbox = 'support@contoso.com';
    expect(describeProbeCause('smtp_auth_disabled', { protocol: 'smtp', mode: 'application', mailbox }).nextStep).toContain(
      "Set-CASMailbox -Identity 'support@contoso.com' -SmtpClientAuthenticationDisabled $false",
    );
    expect(describeProbeCause('exchange_service_principal_missing', { protocol: 'imap', mode: 'application', mailbox }).nextStep).toContain(
      'New-ServicePrincipal -AppId <app id> -ObjectId <service principal object id>',
    );
    expect(describeProbeCause('not_connected', { protocol: 'imap', mode: 'application', mailbox }).nextStep).toContain(
      "Add-MailboxPermission -Identity 'support@contoso.com' -User <service principal object id> -AccessRights FullAccess",
    );
    expect(describeProbeCause('not_connected', { protocol: 'imap', mode: 'delegated', mailbox }).nextStep).toContain(
      "Add-MailboxPermission -Identity 'support@contoso.com' -User <signed-in user> -AccessRights FullAccess",
    );
    expect(describeProbeCause('mailbox_permission_missing', { protocol: 'smtp', mode: 'application', mailbox }).nextStep).toContain(
      "Add-RecipientPermission -Identity 'support@contoso.com' -Trustee <service principal object id> -AccessRights SendAs",
    );
    expect(describeProbeCause('authentication_failed', { protocol: 'pop3', mode: 'delegated', mailbox }).nextStep).toContain(
      "Set-CASMailbox -Identity 'support@contoso.com' -PopEnabled $true",
    );
    expect(describeProbeCause('access_denied', { protocol: 'graph', mode: 'application', mailbox }).nextStep).toContain(
      "Test-ApplicationAccessPolicy -Identity 'support@contoso.com'",
    );
  });

  it("quotes the mailbox so that a pasted command cannot be broken out of, and leaves a placeholder for 'me'", () => {
    const { nextStep } = describeProbeCause('smtp_auth_disabled', { protocol: 'smtp', mode: 'delegated', mailbox: "o'brien@contoso.com'; Remove-Mailbox x" });
    expect(nextStep).toContain("-Identity 'o''brien@contoso.com''; Remove-Mailbox x' -SmtpClientAuthenticationDisabled");
    expect(describeProbeCause('smtp_auth_disabled', { protocol: 'smtp', mode: 'delegated', mailbox: 'me' }).nextStep).toContain("-Identity '<mailbox>'");
    expect(describeProbeCause('mailbox_not_found', { protocol: 'graph', mode: 'delegated' }).explanation).toContain('for the mailbox:');
  });
});
