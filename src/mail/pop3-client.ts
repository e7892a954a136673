import { connect, type ConnectionOptions, type TLSSocket } from 'node:tls';
import { REDACTED, redactText } from '../telemetry/redact.js';

/**
 * A small POP3 client over implicit TLS (Exchange Online: outlook.office365.com:995) that logs in
 * with SASL XOAUTH2, the only way Exchange lets an OAuth token in. The POP3 packages on npm have no
 * SASL, and node-pop3 takes the server's "+" continuation for success.
 *
 * One command at a time. Network and TLS errors reach the caller as Node raised them (with their
 * `code`, e.g. ECONNREFUSED, CERT_HAS_EXPIRED); everything else is a Pop3Error.
 */

export interface Pop3ConnectOptions {
  host: string;
  port: number;
  /** Trust anchors for the server's certificate; the system's CAs when left out. */
  tls?: Pick<ConnectionOptions, 'ca' | 'servername'>;
  /** How long the server may stay silent while an answer is due: connecting, the greeting, any reply line. */
  timeoutMs?: number;
}

/**
 * - POP3_ERR: the server answered -ERR (its words are in serverText);
 * - POP3_PROTOCOL: the server answered something that is not POP3;
 * - ETIMEDOUT: the server did not answer in time;
 * - ECONNRESET: the server closed the connection while an answer was due.
 */
export type Pop3ErrorCode = 'POP3_ERR' | 'POP3_PROTOCOL' | 'ETIMEDOUT' | 'ECONNRESET';

export class Pop3Error extends Error {
  override readonly name = 'Pop3Error';
  /** Set when the server refused the credentials, as opposed to failing in some other way. */
  readonly authenticationFailed: boolean;

  constructor(
    readonly code: Pop3ErrorCode,
    /** The command that failed, without its arguments when they are secret ("AUTH XOAUTH2"), or "greeting". */
    readonly command: string,
    message: string,
    /** The server's reply line, with anything credential-like removed. */
    readonly serverText?: string,
    options: { authenticationFailed?: boolean } = {},
  ) {
    super(message);
    this.authenticationFailed = options.authenticationFailed ?? false;
  }
}

export interface Pop3Stat {
  /** Messages in the maildrop. */
  count: number;
  /** Their total size in octets. */
  size: number;
}

export interface Pop3Uid {
  /** The message number this session uses for it (RETR, DELE). */
  message: number;
  /** The server's unique id, stable across sessions: what a poller remembers. */
  uid: string;
}

export interface Pop3Size {
  message: number;
  /** Octets, as the server counts them (CRLF line ends). */
  size: number;
}

const DEFAULT_TIMEOUT_MS = 30_000;
// RFC 1939 limits a status line to 512 octets, but message lines have no limit in practice; a
// line this long is a server that is not speaking POP3.
const MAX_LINE_LENGTH = 1024 * 1024;
// eslint-disable-next-line no-control-regex
const CONTROL_CHARACTERS = /[\x00-\x1f\x7f]/;

/** What a reader wants after a line: another line, or it is done with this result. */
type Reader<T> = (line: string) => { done: true; value: T } | { done: false };

interface PendingReply {
  command: string;
  read: Reader<unknown>;
  resolve: (value: unknown) => void;
  reject: (error: Error) => void;
}

export class Pop3Client {
  private buffer = '';
  private pending: PendingReply | undefined;
  private failure: Error | undefined;
  private closedByUs = false;

  private constructor(
    private readonly socket: TLSSocket,
    private readonly timeoutMs: number,
  ) {
    // latin1 maps each octet to one character and back, so message bytes survive unchanged.
    socket.setEncoding('latin1');
    socket.on('data', (chunk: string) => {
      this.receive(chunk);
    });
    socket.on('error', (error: Error) => {
      this.fail(error);
    });
    socket.on('close', () => {
      this.fail(new Pop3Error('ECONNRESET', this.pending?.command ?? 'connection', 'The POP3 server closed the connection.'));
    });
    socket.on('timeout', () => {
      const command = this.pending?.command ?? 'connection';
      socket.destroy(new Pop3Error('ETIMEDOUT', command, `The POP3 server did not answer ${command} within ${timeoutMs} ms.`));
    });
  }

  /** Connects and reads the server's greeting. */
  static async connect(options: Pop3ConnectOptions): Promise<Pop3Client> {
    const socket = connect({ ...options.tls, host: options.host, port: options.port });
    const client = new Pop3Client(socket, options.timeoutMs ?? DEFAULT_TIMEOUT_MS);
    try {
      const greeting = await client.exchange(undefined, 'greeting', singleLine);
      if (!greeting.startsWith('+OK')) throw client.refusal('greeting', greeting);
      return client;
    } catch (error) {
      client.close();
      throw error;
    }
  }

  /**
   * SASL XOAUTH2 (RFC 5034 AUTH with the XOAUTH2 mechanism), as Exchange takes it:
   * `user=<mailbox>^Aauth=Bearer <token>^A^A`, base64. For a shared mailbox, `user` is the shared
   * mailbox's address while the token is the signed-in user's (or the app's).
   */
  async authenticateXoauth2(user: string, accessToken: string): Promise<void> {
    // ^A separates the fields: a control character in a value would end it early and start a field of its own.
    if (CONTROL_CHARACTERS.test(user)) throw new TypeError('The POP3 user name contains control characters.');
    if (CONTROL_CHARACTERS.test(accessToken)) throw new TypeError('The access token contains control characters.');
    const response = Buffer.from(`user=${user}\x01auth=Bearer ${accessToken}\x01\x01`).toString('base64');
    const scrub = (text: string) => text.replaceAll(response, REDACTED).replaceAll(accessToken, REDACTED);
    const command = 'AUTH XOAUTH2';

    // The response goes on a line of its own after the server's "+": RFC 2449 limits a command
    // line to 255 octets, and a token is several kilobytes.
    const ready = await this.exchange(command, command, singleLine);
    if (!isContinuation(ready)) throw this.refusal(command, scrub(ready));
    let reply = await this.exchange(response, command, singleLine);
    if (isContinuation(reply)) {
      // A refused token comes back as a challenge carrying the error (base64 JSON); an empty
      // answer ends the exchange and brings the final -ERR.
      reply = await this.exchange('', command, singleLine);
    }
    if (reply.startsWith('+OK')) return;
    throw this.refusal(command, scrub(reply), { authenticationFailed: reply.startsWith('-ERR') });
  }

  async stat(): Promise<Pop3Stat> {
    const reply = await this.ok('STAT');
    const match = /^\+OK (\d+) (\d+)/.exec(reply);
    if (!match) throw this.malformed('STAT', reply);
    return { count: Number(match[1]), size: Number(match[2]) };
  }

  /** The unique id of every message in the maildrop (messages marked deleted are left out by the server). */
  uidl(): Promise<Pop3Uid[]>;
  /** The unique id of one message: a single line, however many messages the maildrop holds. */
  uidl(message: number): Promise<Pop3Uid>;
  async uidl(message?: number): Promise<Pop3Uid[] | Pop3Uid> {
    if (message === undefined) return (await this.multiLine('UIDL')).map((line) => this.uidLine('UIDL', line));
    const command = `UIDL ${messageNumber(message)}`;
    return this.uidLine(command, (await this.ok(command)).replace(/^\+OK\s*/, ''));
  }

  /** The size in octets of every message in the maildrop. */
  async list(): Promise<Pop3Size[]> {
    return (await this.multiLine('LIST')).map((line) => {
      // RFC 1939 lets a server add information after the size.
      const match = /^(\d+) (\d+)(?: |$)/.exec(line);
      if (!match) throw this.malformed('LIST', line);
      return { message: Number(match[1]), size: Number(match[2]) };
    });
  }

  /** Message `message` as its octets: CRLF line ends, the server's dot-stuffing undone. */
  async retr(message: number): Promise<Buffer> {
    const lines = await this.multiLine(`RETR ${messageNumber(message)}`);
    return Buffer.from(lines.map((line) => `${line}\r\n`).join(''), 'latin1');
  }

  /** Marks message `message` deleted; the server removes it once it has answered QUIT, and never otherwise. */
  async dele(message: number): Promise<void> {
    await this.ok(`DELE ${messageNumber(message)}`);
  }

  /** Ends the session; the server commits deletions only on a QUIT it answered. */
  async quit(): Promise<void> {
    await this.ok('QUIT');
    this.closedByUs = true;
    this.socket.end();
  }

  /** Drops the connection without QUIT: for cleaning up after a failure. */
  close(): void {
    if (this.pending) this.fail(new Pop3Error('ECONNRESET', this.pending.command, `The POP3 connection was closed before ${this.pending.command} was answered.`));
    this.closedByUs = true;
    this.socket.destroy();
  }

  private async ok(command: string): Promise<string> {
    const reply = await this.exchange(command, command, singleLine);
    if (!reply.startsWith('+OK')) throw this.refusal(command, reply);
    return reply;
  }

  /** A command whose +OK is followed by lines up to a lone "."; the lines, dot-stuffing undone. */
  private async multiLine(command: string): Promise<string[]> {
    const lines: string[] = [];
    let status = '';
    const reply = await this.exchange<string>(command, command, (line) => {
      if (status === '') {
        status = line;
        return line.startsWith('+OK') ? { done: false } : { done: true, value: line };
      }
      if (line === '.') return { done: true, value: status };
      // The server doubled a leading "." so that no message line could read as the end.
      lines.push(line.startsWith('.') ? line.slice(1) : line);
      return { done: false };
    });
    if (!reply.startsWith('+OK')) throw this.refusal(command, reply);
    return lines;
  }

  /** Sends `line` (unless undefined) and reads the reply with `read`. */
  private exchange<T>(line: string | undefined, command: string, read: Reader<T>): Promise<T> {
    if (this.pending) return Promise.reject(new Error(`POP3 ${command} was sent while ${this.pending.command} is still waiting for its reply; send one command at a time.`));
    if (this.failure) return Promise.reject(this.failure);
    return new Promise<T>((resolve, reject) => {
      this.pending = { command, read, resolve: resolve as (value: unknown) => void, reject };
      // Silence counts only while a reply is due, so a poller may keep a session open between commands.
      this.socket.setTimeout(this.timeoutMs);
      if (line !== undefined) this.socket.write(`${line}\r\n`);
    });
  }

  private receive(chunk: string): void {
    this.buffer += chunk;
    let start = 0;
    for (let end = this.buffer.indexOf('\r\n'); end >= 0; end = this.buffer.indexOf('\r\n', start)) {
      const line = this.buffer.slice(start, end);
      start = end + 2;
      const pending = this.pending;
      if (!pending) {
        this.socket.destroy(new Pop3Error('POP3_PROTOCOL', 'connection', 'The POP3 server sent a line nobody asked for.'));
        return;
      }
      const result = pending.read(line);
      if (result.done) {
        this.pending = undefined;
        this.socket.setTimeout(0);
        pending.resolve(result.value);
      }
    }
    this.buffer = this.buffer.slice(start);
    if (this.buffer.length > MAX_LINE_LENGTH) {
      this.socket.destroy(new Pop3Error('POP3_PROTOCOL', this.pending?.command ?? 'connection', `The POP3 server sent a line longer than ${MAX_LINE_LENGTH} octets.`));
    }
  }

  private fail(error: Error): void {
    // After our own QUIT or close, the end of the connection is expected and nobody is waiting.
    if (this.closedByUs && !this.pending) return;
    this.failure ??= error;
    const pending = this.pending;
    this.pending = undefined;
    pending?.reject(this.failure);
  }

  private refusal(command: string, reply: string, options?: { authenticationFailed?: boolean }): Pop3Error {
    const serverText = redactText(reply);
    const code = reply.startsWith('-ERR') ? 'POP3_ERR' : 'POP3_PROTOCOL';
    const what = command === 'greeting' ? 'The POP3 server greeted with' : `The POP3 server answered ${command} with`;
    return new Pop3Error(code, command, `${what}: ${serverText}`, serverText, options);
  }

  /** "<message number> <unique id>": a line of the UIDL listing, or the single-message reply after its +OK. */
  private uidLine(command: string, line: string): Pop3Uid {
    const match = /^(\d+) ([\x21-\x7e]{1,70})$/.exec(line);
    if (!match) throw this.malformed(command, line);
    return { message: Number(match[1]), uid: match[2] as string };
  }

  private malformed(command: string, reply: string): Pop3Error {
    const serverText = redactText(reply);
    return new Pop3Error('POP3_PROTOCOL', command, `The POP3 server's reply to ${command} is malformed: ${serverText}`, serverText);
  }
}

function messageNumber(message: number): number {
  if (!Number.isSafeInteger(message) || message < 1) throw new RangeError(`A POP3 message number is a positive integer, got ${message}.`);
  return message;
}

function singleLine(line: string): { done: true; value: string } {
  return { done: true, value: line };
}

/** "+" alone or "+ <challenge>", as opposed to "+OK". */
function isContinuation(line: string): boolean {
  return line === '+' || line.startsWith('+ ');
}
