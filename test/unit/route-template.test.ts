import { describe, expect, it } from 'vitest';
import { compareRoutes, compileRoute } from '../../local/host/route-template.js';
import { parseTimeSpan, resolveAppSettings } from '../../local/host/host-json.js';

describe('route templates', () => {
  it('matches literals case-insensitively and captures parameters', () => {
    const route = compileRoute('v1/customers/{customerId}/connections/{connectionId}');
    expect(route.match('/V1/Customers/acme/connections/c-1')).toEqual({ customerId: 'acme', connectionId: 'c-1' });
    expect(route.match('/v1/customers/acme/connections')).toBeUndefined();
    expect(route.match('/v1/customers/acme/connections/c-1/extra')).toBeUndefined();
  });

  it('decodes parameters except encoded slashes', () => {
    expect(compileRoute('files/{name}').match('/files/a%20b%2Fc')).toEqual({ name: 'a b%2Fc' });
    expect(compileRoute('files/{name}').match('/files/%E0%A4%A')).toBeUndefined();
  });

  it('supports optional parameters, defaults and a final catch-all', () => {
    const optional = compileRoute('items/{id?}');
    expect(optional.match('/items')).toEqual({});
    expect(optional.match('/items/7')).toEqual({ id: '7' });
    expect(compileRoute('page/{n=1}').match('/page')).toEqual({ n: '1' });
    expect(compileRoute('static/{*path}').match('/static/a/b/c.css')).toEqual({ path: 'a/b/c.css' });
    expect(compileRoute('static/{*path}').match('/static')).toEqual({});
  });

  it('checks constraints', () => {
    const route = compileRoute('x/{id:int}/{key:guid}/{name:length(2,4)}/{flag:bool}');
    expect(route.match('/x/12/0f8fad5b-d9cb-469f-a165-70867728950e/abc/true')).toBeDefined();
    expect(route.match('/x/1.5/0f8fad5b-d9cb-469f-a165-70867728950e/abc/true')).toBeUndefined();
    expect(route.match('/x/12/not-a-guid/abc/true')).toBeUndefined();
    expect(route.match('/x/12/0f8fad5b-d9cb-469f-a165-70867728950e/abcde/true')).toBeUndefined();
    expect(route.match('/x/12/0f8fad5b-d9cb-469f-a165-70867728950e/abc/yes')).toBeUndefined();
    expect(compileRoute('r/{code:regex(^[a-z]{{3}}$)}').match('/r/abc')).toBeDefined();
    expect(compileRoute('t/{at:regex(^\\d\\d:\\d\\d$)}').match('/t/10:30')).toEqual({ at: '10:30' });
  });

  it('handles complex segments', () => {
    expect(compileRoute('files/{name}.{ext}').match('/files/report.final.pdf')).toEqual({ name: 'report', ext: 'final.pdf' });
  });

  it('rejects templates the host would reject', () => {
    expect(() => compileRoute('a/{*rest}/b')).toThrow(/catch-all must be the last/);
    expect(() => compileRoute('a/{id:unknown}')).toThrow(/unknown constraint/);
    expect(() => compileRoute('a/{id}/{ID}')).toThrow(/used twice/);
  });

  it('orders specific templates before general ones', () => {
    const routes = ['v1/{resource}', 'v1/health', 'v1/{*rest}', 'v1/{id:int}'].map(compileRoute).sort(compareRoutes);
    expect(routes.map((r) => r.template)).toEqual(['v1/health', 'v1/{id:int}', 'v1/{resource}', 'v1/{*rest}']);
  });
});

describe('host.json values', () => {
  it('reads .NET time spans', () => {
    expect(parseTimeSpan('00:00:30', 's')).toBe(30_000);
    expect(parseTimeSpan('00:01:00', 's')).toBe(60_000);
    expect(parseTimeSpan('1.02:03:04.5', 's')).toBe(((26 * 60 + 3) * 60 + 4) * 1000 + 500);
    expect(() => parseTimeSpan('30s', 'extensions.queues.visibilityTimeout')).toThrow(/extensions.queues.visibilityTimeout/);
  });

  it('resolves %setting% references from app settings and names a missing one', () => {
    expect(resolveAppSettings('%Q%-poison', { Q: 'send-mail' }, 'queueName')).toBe('send-mail-poison');
    expect(() => resolveAppSettings('%NOPE%', {}, 'queueName')).toThrow(/app setting "NOPE"/);
  });
});
