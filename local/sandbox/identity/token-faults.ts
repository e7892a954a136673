/**
 * Failures the control API can make the token endpoint answer for its next requests: 503 (Entra
 * temporarily unavailable) or 429 (throttled), with a Retry-After when asked. msal-node remembers
 * a 429/5xx for the Retry-After time (60 s without one) and answers the same request from that
 * memory, so tests give a short Retry-After or use another client instance.
 */

export interface TokenFault {
  status: 429 | 503;
  /** How many of the next token requests fail. */
  count: number;
  retryAfterSeconds?: number;
}

export class TokenFaults {
  private pending: TokenFault | undefined;

  inject(fault: TokenFault): void {
    this.pending = fault.count > 0 ? { ...fault } : undefined;
  }

  /** The fault the next request gets, if any; counts it. */
  take(): TokenFault | undefined {
    const fault = this.pending;
    if (!fault) return undefined;
    fault.count -= 1;
    if (fault.count <= 0) this.pending = undefined;
    return fault;
  }
}
