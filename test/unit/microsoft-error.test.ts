import { describe, expect, it } from 'vitest';
import { classifySignInError, errorFromRedirect, type MicrosoftError } from '../../src/identity/microsoft-error.js';

const redirect = (error: string, code?: number): MicrosoftError => {
  const parsed = errorFromRedirect({ error, ...(code !== undefined && { error_description: `AADSTS${String(code)}: something happened.\r\nTrace ID: x` }) });
  if (!parsed) throw new Error('no error parsed');
  return parsed;
};

describe('classifying what Microsoft said about a sign-in', () => {
  it('reads the AADSTS code from the description of a redirect', () => {
    expect(redirect('access_denied', 90094)).toMatchObject({ error: 'access_denied', aadsts: 90094 });
  });

  it.each([
    ['access_denied', undefined, 'declined'],
    ['access_denied', 65004, 'declined'],
    ['consent_required', 65004, 'declined'],
    // "Return to the application" on Microsoft's "Need admin approval" page.
    ['access_denied', 90094, 'admin-approval'],
    ['consent_required', undefined, 'admin-approval'],
    ['invalid_grant', 65001, 'admin-approval'],
    // Policy and configuration codes win over the access_denied they may come with.
    ['access_denied', 53003, 'blocked'],
    ['access_denied', 50105, 'blocked'],
    ['access_denied', 7000112, 'app-misconfigured'],
    ['invalid_client', 7000215, 'app-misconfigured'],
    ['invalid_client', 7000222, 'app-misconfigured'],
    ['invalid_request', 50011, 'app-misconfigured'],
    ['unauthorized_client', undefined, 'app-misconfigured'],
    ['temporarily_unavailable', undefined, 'unavailable'],
    ['invalid_request', 90033, 'unavailable'],
    ['invalid_request', undefined, 'other'],
  ] as const)('%s with AADSTS%s is %s', (error, code, expected) => {
    expect(classifySignInError(redirect(error, code))).toBe(expected);
  });

  it('treats Microsoft answering 5xx or 429 as unavailable', () => {
    expect(classifySignInError({ error: 'server_error_x', status: 503 })).toBe('unavailable');
    expect(classifySignInError({ error: 'whatever', status: 429 })).toBe('unavailable');
  });
});
