import { createServer, type IncomingHttpHeaders, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { Webhook } from 'standardwebhooks';

/**
 * A vendor's webhook endpoint for tests: plain http on 127.0.0.1. It checks every request with the
 * `standardwebhooks` package against the secrets it is given (as a vendor would), records which
 * of them verify it, and answers as `reply` says.
 */

export type WebhookReply = { status: number; headers?: Record<string, string> } | 'no-answer';

export interface ReceivedWebhook {
  path: string;
  headers: IncomingHttpHeaders;
  body: string;
  receivedAt: number;
  /** The secrets whose signature in webhook-signature verifies, in the order of `secrets`. */
  verifiedBy: string[];
}

export interface WebhookReceiver {
  /** http://127.0.0.1:<port> */
  url: string;
  requests: ReceivedWebhook[];
  /** Secrets to verify with; may change during a test (rotation). */
  secrets: string[];
  /** The answer to a request; `index` counts the requests before it. */
  reply: (request: ReceivedWebhook, index: number) => WebhookReply;
  close(): Promise<void>;
}

export async function startWebhookReceiver(options: {
  secrets: string[];
  reply?: WebhookReceiver['reply'];
}): Promise<WebhookReceiver> {
  const hanging = new Set<ServerResponse>();
  const server = createServer((request, response) => {
    const chunks: Buffer[] = [];
    request.on('data', (chunk: Buffer) => chunks.push(chunk));
    request.on('end', () => {
      const body = Buffer.concat(chunks).toString('utf8');
      const headers = request.headers;
      const received: ReceivedWebhook = {
        path: request.url ?? '/',
        headers,
        body,
        receivedAt: Date.now(),
        verifiedBy: receiver.secrets.filter((secret) => verifies(secret, body, headers)),
      };
      const index = receiver.requests.length;
      receiver.requests.push(received);
      const answer = receiver.reply(received, index);
      if (answer === 'no-answer') {
        hanging.add(response);
        return;
      }
      response.writeHead(answer.status, answer.headers).end();
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  const receiver: WebhookReceiver = {
    url: `http://127.0.0.1:${port}`,
    requests: [],
    secrets: [...options.secrets],
    // What most receivers answer: taken, nothing to say.
    reply: options.reply ?? (() => ({ status: 204 })),
    close: () =>
      new Promise<void>((resolve) => {
        for (const response of hanging) response.destroy();
        server.close(() => { resolve(); });
        server.closeAllConnections();
      }),
  };
  return receiver;
}

function verifies(secret: string, body: string, headers: IncomingHttpHeaders): boolean {
  try {
    new Webhook(secret).verify(body, {
      'webhook-id': String(headers['webhook-id'] ?? ''),
      'webhook-timestamp': String(headers['webhook-timestamp'] ?? ''),
      'webhook-signature': String(headers['webhook-signature'] ?? ''),
    });
    return true;
  } catch {
    return false;
  }
}
