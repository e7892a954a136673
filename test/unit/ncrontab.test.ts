import { describe, expect, it } from 'vitest';
import { parseSchedule } from '../../local/host/timer-scheduler.js';

describe('NCRONTAB schedules', () => {
  it('accepts what Azure accepts and evaluates it in UTC', () => {
    const everyFifteen = parseSchedule('0 */15 * * * *', 'refresh');
    expect(everyFifteen.nextRun(new Date('2026-11-22T10:07:30Z'))?.toISOString()).toBe('2026-11-22T10:15:00.000Z');
    const weekdays = parseSchedule('30 0 9 * JAN-MAR MON-FRI', 'report');
    expect(weekdays.nextRun(new Date('2026-11-22T10:00:00Z'))?.toISOString()).toBe('2027-01-01T09:00:30.000Z');
    expect(parseSchedule('0 0 12 1,15 * *', 'twice').nextRun(new Date('2026-11-02T00:00:00Z'))?.toISOString()).toBe(
      '2026-11-15T12:00:00.000Z',
    );
  });

  it('requires day of month and day of week to match together, as NCrontab does', () => {
    // The 13th that is a Friday: Feb 2026 has one.
    expect(parseSchedule('0 0 0 13 * FRI', 'f13').nextRun(new Date('2026-01-01T00:00:00Z'))?.toISOString()).toBe(
      '2026-02-13T00:00:00.000Z',
    );
  });

  it.each([
    ['*/5 * * * *', /exactly 6 fields/],
    ['0 0 12 L * *', /day: "L" is outside 1-31/],
    ['0 0 12 ? * MON', /day: "\?" is not/],
    ['0 0 12 15W * *', /day: "15W" is outside/],
    ['0 0 12 * * 5#2', /day-of-week: "5#2" is not/],
    ['0 60 * * * *', /minute: "60" is outside 0-59/],
    ['0 0 0 * * 7', /day-of-week: "7" is outside 0-6/],
    ['0 */0 * * * *', /step in "\*\/0" must be at least 1/],
  ])('refuses %s, which Azure would refuse', (schedule, reason) => {
    expect(() => parseSchedule(schedule, 'bad')).toThrow(reason);
  });
});
