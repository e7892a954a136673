import { createInterface } from 'node:readline';
import { Writable } from 'node:stream';
import { AdminError } from './cli-support.js';

/**
 * The password for `connect --password`. Never an argument: the command line shows in `ps` and in
 * shell history. From the CONNECT_PASSWORD environment variable when it is set (scripts), else
 * from standard input: a prompt without echo at a terminal, the first line when piped
 * (`pass show svc-account | npm run connector -- connect --password …`).
 */

export const PASSWORD_ENV = 'CONNECT_PASSWORD';

export interface PasswordInput extends NodeJS.ReadableStream {
  isTTY?: boolean;
}

export class PasswordCancelled extends AdminError {
  constructor() {
    super('Cancelled; nothing was connected.');
    this.name = 'PasswordCancelled';
  }
}

export async function readPassword(env: NodeJS.ProcessEnv, input: PasswordInput, prompt: (text: string) => void): Promise<string> {
  const fromEnv = env[PASSWORD_ENV];
  if (fromEnv !== undefined && fromEnv !== '') return fromEnv;
  return input.isTTY === true ? readHidden(input, prompt) : firstLine(input);
}

async function firstLine(input: PasswordInput): Promise<string> {
  const lines = createInterface({ input, crlfDelay: Infinity });
  try {
    for await (const line of lines) return line;
    return '';
  } finally {
    lines.close();
  }
}

/** readline echoes what is typed to its output; a muted output keeps the password off the screen. */
function readHidden(input: PasswordInput, prompt: (text: string) => void): Promise<string> {
  const muted = new Writable({
    write: (_chunk, _encoding, done) => {
      done();
    },
  });
  const lines = createInterface({ input, output: muted, terminal: true });
  prompt('Password: ');
  return new Promise<string>((resolve, reject) => {
    lines.once('line', (line) => {
      lines.close();
      prompt('\n');
      resolve(line);
    });
    lines.once('SIGINT', () => {
      lines.close();
      prompt('\n');
      reject(new PasswordCancelled());
    });
    lines.once('close', () => {
      resolve('');
    });
  });
}
