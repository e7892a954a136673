import { describe, expect, it } from 'vitest';
import { RequestFaults } from '../../local/sandbox/identity/request-faults.js';

/** A fault switch on a clock the test moves. */
function faultsAt(start = Date.UTC(2026, 0, 1)) {
  let now = start;
  const faults = new RequestFaults<429 | 503>(() => now);
  const statuses = (requests: number) => Array.from({ length: requests }, () => faults.take()?.status ?? 200);
  return { faults, statuses, advance: (seconds: number) => (now += seconds * 1000) };
}

describe('RequestFaults', () => {
  it('fails the next count requests, then none', () => {
    const { faults, statuses } = faultsAt();
    faults.inject({ status: 429, count: 2, retryAfterSeconds: 7 });
    expect(faults.take()).toEqual({ status: 429, retryAfterSeconds: 7 });
    expect(statuses(3)).toEqual([429, 200, 200]);
  });

  it('fails every request for forSeconds of its clock, however many there are', () => {
    const { faults, statuses, advance } = faultsAt();
    faults.inject({ status: 503, forSeconds: 1200 });
    expect(statuses(50).every((s) => s === 503)).toBe(true);
    advance(1199);
    expect(statuses(1)).toEqual([503]);
    advance(1);
    expect(statuses(2)).toEqual([200, 200]);
  });

  it('with both, ends at whichever runs out first', () => {
    const byCount = faultsAt();
    byCount.faults.inject({ status: 503, count: 2, forSeconds: 60 });
    expect(byCount.statuses(3)).toEqual([503, 503, 200]);

    const byTime = faultsAt();
    byTime.faults.inject({ status: 503, count: 100, forSeconds: 60 });
    expect(byTime.statuses(2)).toEqual([503, 503]);
    byTime.advance(60);
    expect(byTime.statuses(1)).toEqual([200]);
  });

  it('answers without Retry-After unless asked for one', () => {
    const { faults } = faultsAt();
    faults.inject({ status: 503, count: 1 });
    expect(faults.take()).toEqual({ status: 503 });
  });

  it('replaces the fault before it, and a fault that has already run out clears it', () => {
    const { faults, statuses } = faultsAt();
    faults.inject({ status: 503, forSeconds: 600 });
    faults.inject({ status: 429, count: 1 });
    expect(statuses(2)).toEqual([429, 200]);
    faults.inject({ status: 503, forSeconds: 600 });
    faults.inject({ status: 503, count: 0 });
    expect(statuses(1)).toEqual([200]);
    faults.inject({ status: 503, forSeconds: 0 });
    expect(statuses(1)).toEqual([200]);
  });

  it('refuses a fault without an end', () => {
    const { faults } = faultsAt();
    expect(() => {
      faults.inject({ status: 503 });
    }).toThrow(/count, forSeconds or both/);
  });
});
