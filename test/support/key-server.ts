import { createServer } from 'node:https';
import type { AddressInfo } from 'node:net';
import { openLocalCa } from '../../local/tls/local-ca.js';
import { closeServer } from './close-server.js';

/**
 * A vendor's public-key URL for tests: HTTPS on 127.0.0.1 with a certificate from the local CA
 * (the test trusts that CA; nothing turns certificate checks off). It serves whatever document the
 * test sets, the way a vendor would publish a JWKS, the Dynamics 365 key list or a PEM, and counts
 * what reaches it.
 */

export interface KeyDocument {
  body: string;
  /** Default 200. */
  status?: number;
  /** Default application/json, or application/x-pem-file for a body that is PEM. */
  contentType?: string;
}

export interface KeyServer {
  /** https://127.0.0.1:<port>/keys */
  url: string;
  /** The local CA's certificate, for the test to trust. */
  caPem: string;
  /** Requests answered so far. */
  readonly requests: number;
  /** TCP connections accepted so far, TLS handshake or not. */
  readonly connections: number;
  /** What the next requests get. */
  serve(document: KeyDocument): void;
  stop(): Promise<void>;
}

export async function startKeyServer(options: { caDirectory: string; document?: KeyDocument }): Promise<KeyServer> {
  const ca = await openLocalCa(options.caDirectory);
  const { certPem, keyPem } = await ca.issueServerCertificate(['127.0.0.1']);
  let document: KeyDocument = options.document ?? { body: '{"keys":[]}' };
  let requests = 0;
  let connections = 0;

  const server = createServer({ cert: certPem, key: keyPem }, (request, response) => {
    requests++;
    request.resume();
    if (request.url !== '/keys') {
      response.writeHead(404).end();
      return;
    }
    const contentType = document.contentType ?? (document.body.trimStart().startsWith('-----BEGIN') ? 'application/x-pem-file' : 'application/json');
    response.writeHead(document.status ?? 200, { 'content-type': contentType, 'cache-control': 'no-store' }).end(document.body);
  });
  server.on('connection', () => {
    connections++;
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, '127.0.0.1', resolve);
  });
  const { port } = server.address() as AddressInfo;

  return {
    url: `https://127.0.0.1:${port}/keys`,
    caPem: ca.certPem,
    get requests() {
      return requests;
    },
    get connections() {
      return connections;
    },
    serve(next) {
      document = next;
    },
    stop: () => closeServer(server),
  };
}
