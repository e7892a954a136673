import { randomBytes } from 'node:crypto';
import { subscribe, unsubscribe } from 'node:diagnostics_channel';
import type { ClientRequest } from 'node:http';
import { RestError } from '@azure/storage-blob';
import { afterAll, afterEach, describe, expect, it } from 'vitest';
import { PayloadStore } from '../../src/store/payload-store.js';
import { testStorage, uniqueName } from '../support/storage.js';

describe('PayloadStore on Azurite', () => {
  const storage = testStorage();
  const store = new PayloadStore(storage.blobService, uniqueName('payloads-'));
  const blobHost = new URL(storage.blobService.url).host;
  const requests: string[] = [];
  const onRequest = (message: unknown) => {
    const request = (message as { request: ClientRequest }).request;
    if (request.getHeader('host') === blobHost) requests.push(request.method);
  };
  subscribe('http.client.request.start', onRequest);
  afterEach(() => {
    requests.length = 0;
  });
  afterAll(() => {
    unsubscribe('http.client.request.start', onRequest);
  });

  it('reads a payload back in one GET, without asking for its size first', async () => {
    const ref = await store.put(Buffer.from('{"subject":"Grüße ✉"}', 'utf8'), { prefix: 'one-get', contentType: 'application/json' });
    requests.length = 0;
    const data = await store.get(ref);
    expect(data.toString('utf8')).toBe('{"subject":"Grüße ✉"}');
    expect(requests).toEqual(['GET']);
  });

  it('reads an empty payload and a large binary one byte for byte', async () => {
    const empty = await store.put(Buffer.alloc(0), { prefix: 'sizes' });
    expect((await store.get(empty)).byteLength).toBe(0);
    const bytes = randomBytes(9 * 1024 * 1024 + 7);
    const large = await store.put(bytes, { prefix: 'sizes' });
    requests.length = 0;
    expect((await store.get(large)).equals(bytes)).toBe(true);
    expect(requests).toEqual(['GET']);
  });

  it('does not trust the size a reference records: the blob decides', async () => {
    const ref = await store.put(Buffer.from('twelve bytes'), { name: 'recorded-size' });
    expect((await store.get({ ...ref, bytes: 3 })).toString()).toBe('twelve bytes');
  });

  it('fails with 404 for a payload that is gone, and refuses names outside its container', async () => {
    const ref = await store.put(Buffer.from('x'), { prefix: 'gone' });
    await store.delete(ref);
    await store.delete(ref);
    const error: unknown = await store.get(ref).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(RestError);
    expect((error as RestError).statusCode).toBe(404);
    await expect(store.get({ ...ref, container: 'elsewhere' })).rejects.toThrow(RangeError);
    await expect(store.get({ ...ref, name: '../escape' })).rejects.toThrow(RangeError);
  });
});
