import { connect, type TLSSocket } from 'node:tls';

/**
 * Just enough POP3 over implicit TLS to prove the mail servers' SASL XOAUTH2: the usual POP3 client
 * libraries have no SASL support, and node-pop3 mistakes the server's "+" challenge for success.
 */

export class Pop3AuthenticationError extends Error {
  readonly authenticationFailed = true;
}

export class Pop3Client {
  private buffer = '';
  private readonly lines: string[] = [];
  private waiter: { resolve: (line: string) => void; reject: (error: Error) => void } | undefined;
  private failure: Error | undefined;

  private constructor(private readonly socket: TLSSocket) {
    socket.setEncoding('latin1');
    socket.on('data', (chunk: string) => {
      this.buffer += chunk;
      let end: number;
      while ((end = this.buffer.indexOf('\r\n')) >= 0) {
        this.lines.push(this.buffer.slice(0, end));
        this.buffer = this.buffer.slice(end + 2);
      }
      this.deliver();
    });
    const fail = (error: Error) => {
      this.failure ??= error;
      this.deliver();
    };
    socket.on('error', fail);
    socket.on('close', () => {
      fail(new Error('POP3 connection closed'));
    });
    socket.setTimeout(10_000, () => socket.destroy(new Error('POP3 server did not answer within 10 s')));
  }

  static async connect(options: { host: string; port: number; ca: string }): Promise<Pop3Client> {
    const socket = connect({ host: options.host, port: options.port, ca: options.ca });
    const client = new Pop3Client(socket);
    const greeting = await client.readLine();
    if (!greeting.startsWith('+OK')) throw new Error(`unexpected POP3 greeting: ${greeting}`);
    return client;
  }

  /** SASL XOAUTH2 with an initial response, as a connector would send it to outlook.office365.com:995. */
  async authenticateXoauth2(user: string, accessToken: string): Promise<void> {
    const initial = Buffer.from(`user=${user}\x01auth=Bearer ${accessToken}\x01\x01`).toString('base64');
    let reply = await this.command(`AUTH XOAUTH2 ${initial}`);
    // On a refused token the server first sends a "+" challenge carrying the error as base64 JSON;
    // the client must answer with an empty line to get the final -ERR.
    if (reply.startsWith('+ ') || reply === '+') reply = await this.command('');
    if (reply.startsWith('+OK')) return;
    if (reply.startsWith('-ERR')) throw new Pop3AuthenticationError(`POP3 refused the token: ${reply}`);
    throw new Error(`unexpected POP3 reply to AUTH: ${reply}`);
  }

  async stat(): Promise<{ count: number; size: number }> {
    const match = /^\+OK (\d+) (\d+)/.exec(await this.expectOk('STAT'));
    if (!match) throw new Error('malformed STAT reply');
    return { count: Number(match[1]), size: Number(match[2]) };
  }

  /** The message as sent over the wire: CRLF line ends, dot-stuffing undone. */
  async retr(message: number): Promise<string> {
    await this.expectOk(`RETR ${message}`);
    const body: string[] = [];
    for (let line = await this.readLine(); line !== '.'; line = await this.readLine()) {
      body.push(line.startsWith('..') ? line.slice(1) : line);
    }
    return Buffer.from(body.join('\r\n'), 'latin1').toString('utf8');
  }

  async quit(): Promise<void> {
    await this.expectOk('QUIT');
    this.socket.end();
  }

  close(): void {
    this.socket.destroy();
  }

  private async expectOk(command: string): Promise<string> {
    const reply = await this.command(command);
    if (!reply.startsWith('+OK')) throw new Error(`POP3 ${command.split(' ')[0] ?? command} failed: ${reply}`);
    return reply;
  }

  private command(line: string): Promise<string> {
    this.socket.write(`${line}\r\n`);
    return this.readLine();
  }

  private readLine(): Promise<string> {
    if (this.waiter) throw new Error('one POP3 command at a time');
    return new Promise((resolve, reject) => {
      this.waiter = { resolve, reject };
      this.deliver();
    });
  }

  private deliver(): void {
    const waiter = this.waiter;
    if (!waiter) return;
    const line = this.lines.shift();
    if (line !== undefined) {
      this.waiter = undefined;
      waiter.resolve(line);
    } else if (this.failure) {
      this.waiter = undefined;
      waiter.reject(this.failure);
    }
  }
}
