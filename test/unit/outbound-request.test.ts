import { describe, expect, it } from 'vitest';
import { OutboundRequestError, checkOutboundUrl, isNonPublicAddress } from '../../src/net/outbound-request.js';

describe('outbound addresses', () => {
  it.each([
    '127.0.0.1', '127.8.9.10', '10.1.2.3', '172.16.0.1', '172.31.255.254', '192.168.1.1', '169.254.169.254', '100.64.0.1',
    '0.0.0.0', '224.0.0.1', '255.255.255.255', '198.18.0.1', '::1', '::', 'fe80::1', 'fd00::1', 'fc12::1', 'ff02::1',
    '::ffff:127.0.0.1', '::ffff:10.0.0.1', '::ffff:169.254.169.254', '64:ff9b::a00:1', 'not-an-ip',
  ])('refuses %s', (address) => {
    expect(isNonPublicAddress(address)).toBe(true);
  });

  it.each(['::7f00:1', '::ffff:7f00:1', '::ffff:0:7f00:1', '::ffff:a00:1', '::ffff:0:a9fe:a9fe'])('refuses the IPv4-embedding form %s', (address) => {
    expect(isNonPublicAddress(address)).toBe(true);
  });

  it.each(['20.190.160.1', '52.96.0.1', '8.8.8.8', '172.32.0.1', '2603:1036::1', '::ffff:8.8.8.8', '::ffff:0808:0808'])('allows %s', (address) => {
    expect(isNonPublicAddress(address)).toBe(false);
  });

  it('checks the URL before resolving anything', () => {
    expect(() => checkOutboundUrl('http://keys.example.com/jwks', false)).toThrow(/must use https/);
    expect(() => checkOutboundUrl('https://127.0.0.1/jwks', false)).toThrow(OutboundRequestError);
    expect(() => checkOutboundUrl('https://[::1]:8443/jwks', false)).toThrow(/not a public address/);
    expect(() => checkOutboundUrl('https://[::127.0.0.1]/jwks', false)).toThrow(/not a public address/);
    expect(() => checkOutboundUrl('https://localhost/jwks', false)).toThrow(/not a public host/);
    expect(() => checkOutboundUrl('https://user:pass@keys.example.com/', false)).toThrow(/user name or password/);
    expect(() => checkOutboundUrl('not a url', false)).toThrow(/not a valid URL/);
    expect(checkOutboundUrl('https://keys.example.com/jwks', false).hostname).toBe('keys.example.com');
    expect(checkOutboundUrl('http://127.0.0.1:8080/hook', true).port).toBe('8080');
  });
});
