import { RestError } from '@azure/storage-blob';
import { describe, expect, it, vi } from 'vitest';
import { ProbeFailure, cachedHealthCheck, checkHealth } from '../../src/health/check-health.js';

const ok = () => Promise.resolve();

describe('checkHealth', () => {
  it('is healthy when every probe answers', async () => {
    const report = await checkHealth({ tableStorage: ok, queueStorage: ok, blobStorage: ok, secretStore: ok });
    expect(report.status).toBe('healthy');
    expect(Object.values(report.checks).map((c) => c.status)).toEqual(['ok', 'ok', 'ok', 'ok']);
  });

  it('reports each failing dependency by kind and status, never by the server message', async () => {
    const leaky = new RestError('Server failed to authenticate. Signature was sig=c2VjcmV0 AccountKey=abc', {
      statusCode: 403,
      code: 'AuthenticationFailed',
    });
    const report = await checkHealth({
      tableStorage: () => Promise.reject(leaky),
      queueStorage: ok,
      blobStorage: () => Promise.reject(new ProbeFailure('container "payloads" is missing')),
      secretStore: () => Promise.reject(Object.assign(new Error('connect ECONNREFUSED 127.0.0.1:8443'), { code: 'ECONNREFUSED' })),
    });
    expect(report.status).toBe('unhealthy');
    expect(report.checks.tableStorage).toMatchObject({ status: 'failed', reason: 'RestError 403 AuthenticationFailed' });
    expect(report.checks.queueStorage.status).toBe('ok');
    expect(report.checks.blobStorage.reason).toBe('container "payloads" is missing');
    expect(report.checks.secretStore.reason).toBe('Error ECONNREFUSED');
    expect(JSON.stringify(report)).not.toMatch(/c2VjcmV0|AccountKey|abc/);
  });

  it('fails a probe that does not answer in time without waiting for it', async () => {
    const started = Date.now();
    const report = await checkHealth(
      { tableStorage: () => new Promise(() => undefined), queueStorage: ok, blobStorage: ok, secretStore: ok },
      50,
    );
    expect(report.checks.tableStorage).toMatchObject({ status: 'failed', reason: 'no answer within 50 ms' });
    expect(Date.now() - started).toBeLessThan(5000);
  });
});

describe('cachedHealthCheck', () => {
  it('runs one check at a time and reuses its report for the time to live', async () => {
    let runs = 0;
    let release: () => void = () => undefined;
    const slow = () => {
      runs++;
      return new Promise<void>((resolve) => { release = resolve; });
    };
    let now = 1_000_000;
    const clock = vi.spyOn(Date, 'now').mockImplementation(() => now);
    try {
      const check = cachedHealthCheck({ tableStorage: slow, queueStorage: ok, blobStorage: ok, secretStore: ok }, { ttlMs: 10_000 });
      const first = check();
      const second = check();
      expect(runs).toBe(1);
      release();
      expect(await first).toBe(await second);
      now += 9_999;
      await check();
      expect(runs).toBe(1);
      now += 2;
      const third = check();
      expect(runs).toBe(2);
      release();
      expect((await third).status).toBe('healthy');
    } finally {
      clock.mockRestore();
    }
  });
});
