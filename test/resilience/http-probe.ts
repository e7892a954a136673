import { Agent, request } from 'node:http';
import { connect } from 'node:net';

/**
 * A client that sends what fetch refuses to: a body on GET, any Content-Type or none, header
 * values with Latin-1 bytes, paths exactly as written; and, over a bare socket, bytes that are not
 * HTTP at all (CR or LF inside a header value). For the bad-input and secret-leak tests.
 */

export interface ProbeRequest {
  method: string;
  /** The path and query as sent (already percent-encoded), starting with "/". */
  path: string;
  headers?: Record<string, string>;
  body?: string | Buffer;
}

export interface ProbeAnswer {
  status: number;
  headers: Record<string, string>;
  text: string;
}

const agent = new Agent({ keepAlive: true, maxSockets: 8 });

/**
 * Sends the request; once more on a fresh connection when a kept-alive one was closed under it
 * before any answer came (the server's keep-alive timeout racing the reuse), never otherwise.
 */
export async function probe(port: number, input: ProbeRequest): Promise<ProbeAnswer> {
  try {
    return await probeOnce(port, input, agent);
  } catch (error) {
    if ((error as { code?: string }).code !== 'ECONNRESET') throw error;
    return probeOnce(port, input, false);
  }
}

function probeOnce(port: number, input: ProbeRequest, via: Agent | false): Promise<ProbeAnswer> {
  const body = input.body === undefined ? undefined : Buffer.isBuffer(input.body) ? input.body : Buffer.from(input.body, 'utf8');
  return new Promise((resolve, reject) => {
    const req = request(
      {
        host: '127.0.0.1',
        port,
        method: input.method,
        path: input.path,
        agent: via,
        headers: { ...input.headers, ...(body !== undefined && { 'content-length': String(body.length) }) },
      },
      (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (chunk: Buffer) => chunks.push(chunk));
        res.on('end', () => {
          const headers: Record<string, string> = {};
          for (const [name, value] of Object.entries(res.headers)) if (value !== undefined) headers[name] = Array.isArray(value) ? value.join(', ') : value;
          resolve({ status: res.statusCode ?? 0, headers, text: Buffer.concat(chunks).toString('utf8') });
        });
        res.on('error', reject);
      },
    );
    req.on('error', reject);
    req.end(body);
  });
}

/** Sends `raw` as it is and reads the answer until the server closes the connection. */
export function rawProbe(port: number, raw: Buffer): Promise<ProbeAnswer> {
  return new Promise((resolve, reject) => {
    const socket = connect(port, '127.0.0.1');
    const chunks: Buffer[] = [];
    socket.on('data', (chunk) => chunks.push(chunk));
    socket.on('error', reject);
    socket.on('close', () => {
      const text = Buffer.concat(chunks).toString('latin1');
      const [head = '', ...rest] = text.split('\r\n\r\n');
      const [statusLine = '', ...lines] = head.split('\r\n');
      const headers: Record<string, string> = {};
      for (const line of lines) {
        const colon = line.indexOf(':');
        if (colon > 0) headers[line.slice(0, colon).trim().toLowerCase()] = line.slice(colon + 1).trim();
      }
      resolve({ status: Number(/^HTTP\/1\.[01] (\d{3})/.exec(statusLine)?.[1] ?? 0), headers, text: rest.join('\r\n\r\n') });
    });
    socket.end(raw);
  });
}

/** Percent-encodes every byte of the UTF-8 form but unreserved characters (a lone surrogate becomes U+FFFD's bytes). */
export function encodeSegment(value: string): string {
  let out = '';
  for (const byte of Buffer.from(value, 'utf8')) {
    const char = String.fromCharCode(byte);
    out += /[A-Za-z0-9\-._~]/.test(char) ? char : `%${byte.toString(16).toUpperCase().padStart(2, '0')}`;
  }
  return out;
}

export function closeProbes(): void {
  agent.destroy();
}
