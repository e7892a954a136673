/**
 * Failures the control API can make an endpoint answer on purpose: the token endpoint (Entra
 * temporarily unavailable or throttling) and the sandbox Graph (throttled, unavailable, broken).
 * A fault lasts for a number of requests, for a time on the sandbox clock, or until the first of
 * the two runs out, so a test can make Entra answer 503 "for 20 minutes" and then move the clock
 * instead of waiting. A new fault replaces the one before; one that has already run out (count 0,
 * forSeconds 0) clears it.
 */

export interface FaultWindow<Status extends number = number> {
  status: Status;
  /** How many of the next requests fail. */
  count?: number;
  /** Every request fails until the sandbox clock passes now + forSeconds. */
  forSeconds?: number;
  retryAfterSeconds?: number;
}

/** What a failed request answers with. */
export interface InjectedFault<Status extends number = number> {
  status: Status;
  retryAfterSeconds?: number;
}

interface ActiveFault<Status extends number> extends InjectedFault<Status> {
  remaining?: number;
  /** Milliseconds since the epoch. */
  until?: number;
}

export class RequestFaults<Status extends number = number> {
  private active: ActiveFault<Status> | undefined;

  constructor(private readonly now: () => number) {}

  inject(window: FaultWindow<Status>): void {
    if (window.count === undefined && window.forSeconds === undefined) throw new Error('a fault needs count, forSeconds or both');
    const fault: ActiveFault<Status> = {
      status: window.status,
      ...(window.retryAfterSeconds === undefined ? {} : { retryAfterSeconds: window.retryAfterSeconds }),
      ...(window.count === undefined ? {} : { remaining: window.count }),
      ...(window.forSeconds === undefined ? {} : { until: this.now() + window.forSeconds * 1000 }),
    };
    this.active = this.runOut(fault) ? undefined : fault;
  }

  /** The fault this request gets, if any; it counts against the fault's `count`. */
  take(): InjectedFault<Status> | undefined {
    const fault = this.active;
    if (!fault || this.runOut(fault)) {
      this.active = undefined;
      return undefined;
    }
    if (fault.remaining !== undefined) {
      fault.remaining -= 1;
      if (fault.remaining <= 0) this.active = undefined;
    }
    return { status: fault.status, ...(fault.retryAfterSeconds === undefined ? {} : { retryAfterSeconds: fault.retryAfterSeconds }) };
  }

  private runOut(fault: ActiveFault<Status>): boolean {
    return (fault.remaining !== undefined && fault.remaining <= 0) || (fault.until !== undefined && this.now() >= fault.until);
  }
}

/** The sandbox's two fault switches, shared by the endpoints and the control API. */
export interface SandboxFaults {
  token: RequestFaults<429 | 503>;
  graph: RequestFaults<429 | 500 | 503>;
}

export function createSandboxFaults(now: () => number): SandboxFaults {
  return { token: new RequestFaults(now), graph: new RequestFaults(now) };
}
