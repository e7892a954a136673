import { lookup as dnsLookup, type LookupAddress } from 'node:dns';
import { request as httpRequest, type IncomingHttpHeaders } from 'node:http';
import { request as httpsRequest } from 'node:https';
import { BlockList, isIP, type LookupFunction } from 'node:net';

/**
 * HTTP requests to addresses a vendor configured (token-issuer key URLs, webhook endpoints). Such a
 * URL must not become a way into the connector's own network (SSRF): unless private networks are
 * allowed (local development), every address the host name resolves to is checked against the
 * loopback, private, link-local, shared, multicast and reserved ranges at connect time, so a DNS
 * answer that changes between a check and the connection cannot slip through. Redirects are not
 * followed; responses are read up to a limit and cut off after a timeout.
 */

export interface OutboundRequest {
  url: string;
  method?: 'GET' | 'POST';
  headers?: Record<string, string>;
  body?: Buffer | string;
  timeoutMs: number;
  maxResponseBytes: number;
  /**
   * What a response body over maxResponseBytes means: a failure (the default, for documents we
   * need whole), or nothing (the body is cut off and the answer still counts, for callers that
   * only need the status, like webhook deliveries).
   */
  oversizedBody?: 'fail' | 'truncate';
  /** Local development only: loopback and private addresses are allowed, and so is plain http. */
  allowPrivateNetwork: boolean;
}

export interface OutboundResponse {
  status: number;
  headers: IncomingHttpHeaders;
  body: Buffer;
  latencyMs: number;
}

export type OutboundFailure = 'invalid-url' | 'blocked-address' | 'timeout' | 'network' | 'too-large';

export class OutboundRequestError extends Error {
  constructor(
    readonly kind: OutboundFailure,
    message: string,
    readonly code?: string,
  ) {
    super(message);
    this.name = 'OutboundRequestError';
  }
}

const blocked = new BlockList();
for (const [network, prefix] of [
  ['0.0.0.0', 8],
  ['10.0.0.0', 8],
  ['100.64.0.0', 10],
  ['127.0.0.0', 8],
  ['169.254.0.0', 16],
  ['172.16.0.0', 12],
  ['192.0.0.0', 24],
  ['192.0.2.0', 24],
  ['192.88.99.0', 24],
  ['192.168.0.0', 16],
  ['198.18.0.0', 15],
  ['198.51.100.0', 24],
  ['203.0.113.0', 24],
  ['224.0.0.0', 4],
  ['240.0.0.0', 4],
] as const) {
  blocked.addSubnet(network, prefix, 'ipv4');
}
for (const [network, prefix] of [
  ['::', 128],
  ['::1', 128],
  ['64:ff9b::', 96],
  ['64:ff9b:1::', 48],
  ['100::', 64],
  ['2001::', 23],
  ['2001:db8::', 32],
  ['2002::', 16],
  ['fc00::', 7],
  ['fe80::', 10],
  ['fec0::', 10],
  ['ff00::', 8],
] as const) {
  blocked.addSubnet(network, prefix, 'ipv6');
}

/** Whether an IP address is one a vendor-configured URL may not reach. */
export function isNonPublicAddress(address: string): boolean {
  const family = isIP(address);
  if (family === 4) return blocked.check(address, 'ipv4');
  if (family !== 6) return true;
  const embedded = embeddedIPv4(address);
  if (embedded !== undefined) return blocked.check(embedded, 'ipv4');
  return blocked.check(address, 'ipv6');
}

/**
 * The IPv4 address inside an IPv4-compatible (::a.b.c.d), -mapped (::ffff:a.b.c.d) or -translated
 * (::ffff:0:a.b.c.d) IPv6 address, in whatever notation it is written (::7f00:1 is 127.0.0.1).
 */
function embeddedIPv4(address: string): string | undefined {
  const words = expandIPv6(address);
  if (!words) return undefined;
  const zeroPrefix = words.slice(0, 4).every((w) => w === 0);
  const [w4, w5, w6, w7] = [words[4] ?? 0, words[5] ?? 0, words[6] ?? 0, words[7] ?? 0];
  const embeds = zeroPrefix && ((w4 === 0 && (w5 === 0 || w5 === 0xffff)) || (w4 === 0xffff && w5 === 0));
  if (!embeds || (w4 === 0 && w5 === 0 && w6 === 0 && w7 <= 1)) return undefined;
  return [w6 >> 8, w6 & 0xff, w7 >> 8, w7 & 0xff].join('.');
}

/** The eight 16-bit words of an IPv6 address (a trailing dotted IPv4 part counts as two). */
function expandIPv6(address: string): number[] | undefined {
  let text = address.toLowerCase().replace(/%.*$/, '');
  const dotted = /(\d+)\.(\d+)\.(\d+)\.(\d+)$/.exec(text);
  if (dotted) {
    const [a, b, c, d] = dotted.slice(1).map(Number) as [number, number, number, number];
    text = `${text.slice(0, dotted.index)}${((a << 8) | b).toString(16)}:${((c << 8) | d).toString(16)}`;
  }
  const [head = '', tail] = text.split('::');
  const left = head === '' ? [] : head.split(':');
  const right = tail === undefined || tail === '' ? [] : tail.split(':');
  const missing = 8 - left.length - right.length;
  if (tail === undefined ? missing !== 0 : missing < 0) return undefined;
  return [...left, ...Array<string>(missing).fill('0'), ...right].map((word) => parseInt(word, 16));
}

/** Checks a URL before any request: scheme, and a literal IP address in it. */
export function checkOutboundUrl(url: string, allowPrivateNetwork: boolean): URL {
  let parsed: URL;
  try {
    parsed = new URL(url);
  } catch {
    throw new OutboundRequestError('invalid-url', 'not a valid URL');
  }
  const httpAllowed = allowPrivateNetwork && parsed.protocol === 'http:';
  if (parsed.protocol !== 'https:' && !httpAllowed) {
    throw new OutboundRequestError('invalid-url', 'the URL must use https');
  }
  if (parsed.username || parsed.password) {
    throw new OutboundRequestError('invalid-url', 'the URL must not carry a user name or password');
  }
  const host = parsed.hostname.replace(/^\[|\]$/g, '');
  if (!allowPrivateNetwork && isIP(host) && isNonPublicAddress(host)) {
    throw new OutboundRequestError('blocked-address', `${host} is not a public address`);
  }
  if (!allowPrivateNetwork && /^(localhost|.*\.localhost)$/i.test(host)) {
    throw new OutboundRequestError('blocked-address', `${host} is not a public host`);
  }
  return parsed;
}

const publicOnlyLookup: LookupFunction = (hostname, options, callback) => {
  dnsLookup(hostname, { ...options, all: true }, (error, addresses: LookupAddress[]) => {
    if (error) {
      callback(error, '', 0);
      return;
    }
    const refused = addresses.find((a) => isNonPublicAddress(a.address));
    if (refused || addresses.length === 0) {
      const blockedError = new OutboundRequestError('blocked-address', `${hostname} resolves to ${refused?.address ?? 'nothing'}, which is not a public address`, 'EBLOCKED');
      callback(blockedError, '', 0);
      return;
    }
    if (options.all) {
      (callback as unknown as (e: null, a: LookupAddress[]) => void)(null, addresses);
    } else {
      const [first] = addresses;
      callback(null, first?.address ?? '', first?.family ?? 4);
    }
  });
};

export function outboundRequest(request: OutboundRequest): Promise<OutboundResponse> {
  let url: URL;
  try {
    url = checkOutboundUrl(request.url, request.allowPrivateNetwork);
  } catch (error) {
    return Promise.reject(error instanceof Error ? error : new Error(String(error)));
  }
  const started = performance.now();
  const send = url.protocol === 'https:' ? httpsRequest : httpRequest;
  return new Promise((resolve, reject) => {
    const req = send(
      url,
      {
        method: request.method ?? 'GET',
        headers: request.headers,
        ...(!request.allowPrivateNetwork && { lookup: publicOnlyLookup }),
        // A fresh connection per request: a pooled socket would skip the address check.
        agent: false,
        timeout: request.timeoutMs,
      },
      (res) => {
        const chunks: Buffer[] = [];
        let size = 0;
        res.on('data', (chunk: Buffer) => {
          size += chunk.length;
          if (size > request.maxResponseBytes) {
            if (request.oversizedBody === 'truncate') {
              resolve({ status: res.statusCode ?? 0, headers: res.headers, body: Buffer.concat(chunks), latencyMs: Math.round(performance.now() - started) });
              req.destroy();
              return;
            }
            req.destroy(new OutboundRequestError('too-large', `the response is larger than ${request.maxResponseBytes} bytes`));
            return;
          }
          chunks.push(chunk);
        });
        res.on('end', () => {
          resolve({
            status: res.statusCode ?? 0,
            headers: res.headers,
            body: Buffer.concat(chunks),
            latencyMs: Math.round(performance.now() - started),
          });
        });
        res.on('error', (error) => { reject(describe(error, request.timeoutMs)); });
      },
    );
    const deadline = setTimeout(() => {
      req.destroy(new OutboundRequestError('timeout', `no complete answer within ${request.timeoutMs} ms`));
    }, request.timeoutMs);
    req.on('close', () => { clearTimeout(deadline); });
    req.on('timeout', () => {
      req.destroy(new OutboundRequestError('timeout', `no answer within ${request.timeoutMs} ms`));
    });
    req.on('error', (error) => { reject(describe(error, request.timeoutMs)); });
    req.end(request.body);
  });
}

function describe(error: Error, timeoutMs: number): OutboundRequestError {
  if (error instanceof OutboundRequestError) return error;
  const code = (error as NodeJS.ErrnoException).code;
  if (code === 'ETIMEDOUT') return new OutboundRequestError('timeout', `no answer within ${timeoutMs} ms`, code);
  // Node's messages name the address and the TLS problem; they carry no request content.
  return new OutboundRequestError('network', error.message, code);
}
