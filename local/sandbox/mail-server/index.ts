import { execFile } from 'node:child_process';
import { randomBytes, type JsonWebKey } from 'node:crypto';
import { existsSync } from 'node:fs';
import { chmod, readFile, rename, rm, writeFile } from 'node:fs/promises';
import { delimiter, dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { freePorts } from '../../free-port.js';

/**
 * A local stand-in for Exchange Online's IMAP, POP3 and SMTP endpoints: Dovecot and Postfix from
 * Debian, on 127.0.0.1, accepting only Entra-shaped OAuth 2.0 access tokens over SASL XOAUTH2 (and
 * OAUTHBEARER when asked). Tokens are checked locally against the public keys written with
 * `writeSigningKeys`, so no identity provider has to run. up.sh and down.sh do the work; this is
 * the typed front door for the integration tests and the sandbox.
 */

export interface MailServerPorts {
  /** IMAP with STARTTLS (Exchange: 143). */
  imap: number;
  /** IMAP over implicit TLS (Exchange: outlook.office365.com:993). */
  imaps: number;
  /** POP3 with STLS (Exchange: 110). */
  pop3: number;
  /** POP3 over implicit TLS (Exchange: 995). */
  pop3s: number;
  /** SMTP submission with STARTTLS (Exchange: smtp.office365.com:587). */
  submission: number;
  /** SMTP submission over implicit TLS (Exchange has none; kept for clients configured for 465). */
  submissions: number;
  /** Dovecot's SASL listener that Postfix asks to check tokens; internal to the stack. */
  auth: number;
  /** Dovecot LMTP, where Postfix delivers; internal to the stack. */
  lmtp: number;
}

/** The ports of the reference setup; tests use free ports instead. */
export const DEFAULT_MAIL_PORTS: MailServerPorts = {
  imap: 1143,
  imaps: 1993,
  pop3: 1110,
  pop3s: 1995,
  submission: 1587,
  submissions: 1465,
  auth: 12345,
  lmtp: 1024,
};

export type SaslMechanism = 'xoauth2' | 'oauthbearer';

export interface MailServerOptions {
  /**
   * Folder for configuration, TLS files, keys, mail and logs. At most 64 characters (Dovecot puts its
   * unix sockets below it), and every parent must be world-traversable (Dovecot and Postfix drop root).
   */
  stackDir: string;
  /** Tenant ids whose tokens are accepted (issuer `https://sts.windows.net/<tenant>/`). */
  tenants: readonly string[];
  ports?: Partial<MailServerPorts>;
  /** Defaults to both; `['xoauth2']` is what Exchange Online offers. */
  mechanisms?: readonly SaslMechanism[];
  /** PEM files to serve instead of the stack's own CA and certificate. Without `caPath` the certificate is the trust anchor. */
  tls?: { certPath: string; keyPath: string; caPath?: string };
}

export interface RunningMailServer {
  host: '127.0.0.1';
  ports: MailServerPorts;
  /** What clients pass as `tls: { ca }`. */
  caPem: string;
  /** The file `writeSigningKeys` writes. */
  keyDictPath: string;
  stackDir: string;
  /** Dovecot's log, which names why a token was refused. */
  dovecotLogPath: string;
  stop(): Promise<void>;
}

const PACKAGES = 'dovecot-core dovecot-imapd dovecot-pop3d dovecot-lmtpd postfix';
// The same files install.sh checks before deciding to install.
const BINARIES = ['/usr/sbin/dovecot', '/usr/lib/dovecot/imap', '/usr/lib/dovecot/pop3', '/usr/lib/dovecot/lmtp', '/usr/sbin/postfix'];

// The scripts and templates stay in the source tree; compiled code under dist/ looks for them there.
function scriptsDir(): string {
  const here = dirname(fileURLToPath(import.meta.url));
  if (existsSync(join(here, 'up.sh'))) return here;
  return join(here, '..', '..', '..', '..', 'local', 'sandbox', 'mail-server');
}

function onPath(command: string): boolean {
  return (process.env.PATH ?? '').split(delimiter).some((dir) => dir !== '' && existsSync(join(dir, command)));
}

/**
 * Whether up.sh can run here, and if not, why. Both masters must start as root, so root is always
 * needed; the packages must be installed already or be installable with apt-get.
 */
export function mailServerSupport(): { runnable: true } | { runnable: false; reason: string } {
  if (process.platform !== 'linux') {
    return { runnable: false, reason: `the mail server stack needs Linux with Debian packages (this is ${process.platform})` };
  }
  if (process.getuid?.() !== 0) {
    return { runnable: false, reason: 'the mail server stack must start as root (Dovecot and Postfix drop privileges per service)' };
  }
  if (BINARIES.every((binary) => existsSync(binary)) || onPath('apt-get')) return { runnable: true };
  return { runnable: false, reason: `${PACKAGES} are not installed and apt-get is not available to install them` };
}

/** up.sh found one of the requested ports taken; whoever picked them may pick others and retry. */
export class MailServerPortInUseError extends Error {}

/**
 * The installed Dovecot is not a version the stack's configuration is written for (2.3.x); the
 * message names the version found. Retrying does not help: it needs another machine or container.
 */
export class MailServerVersionError extends Error {}

const SCRIPT_PURPOSE = { 'install.sh': 'installation', 'up.sh': 'start', 'down.sh': 'stop' } as const;

function runScript(script: keyof typeof SCRIPT_PURPOSE, args: string[], env: NodeJS.ProcessEnv, timeoutMs: number): Promise<void> {
  return new Promise((resolve, reject) => {
    execFile('bash', [join(scriptsDir(), script), ...args], { env, timeout: timeoutMs }, (error, _stdout, stderr) => {
      if (!error) {
        resolve();
        return;
      }
      const detail = stderr.trim() || (error.killed ? `no answer within ${timeoutMs / 1000} s` : error.message);
      const message = `mail server ${SCRIPT_PURPOSE[script]} failed: ${detail}`;
      // up.sh's exit statuses: 3 a port is taken, 4 an unsupported Dovecot.
      if (error.code === 3) reject(new MailServerPortInUseError(message));
      else if (error.code === 4) reject(new MailServerVersionError(message));
      else reject(new Error(message));
    });
  });
}

/**
 * Installs Dovecot and Postfix when they are missing (as root, with apt-get); startMailServer does
 * this too. Callers that choose free ports call it first: a first install can take a minute.
 */
export function installMailServerPackages(logPath?: string): Promise<void> {
  return runScript('install.sh', logPath === undefined ? [] : [logPath], process.env, 900_000);
}

/**
 * Starts (or restarts) the stack in `stackDir` and resolves once every port accepts connections.
 * The first start on a machine without the packages installs them, which takes up to a minute.
 * Throws MailServerPortInUseError when one of the ports is taken, and MailServerVersionError when
 * the installed Dovecot is not 2.3.x (as on Debian 13, which ships 2.4).
 */
export async function startMailServer(options: MailServerOptions): Promise<RunningMailServer> {
  const ports = { ...DEFAULT_MAIL_PORTS, ...options.ports };
  const env: NodeJS.ProcessEnv = {
    ...process.env,
    MAIL_TENANTS: options.tenants.join(' '),
    MAIL_AUTH_MECHANISMS: (options.mechanisms ?? ['xoauth2', 'oauthbearer']).join(' '),
    MAIL_IMAP_PORT: String(ports.imap),
    MAIL_IMAPS_PORT: String(ports.imaps),
    MAIL_POP3_PORT: String(ports.pop3),
    MAIL_POP3S_PORT: String(ports.pop3s),
    MAIL_SUBMISSION_PORT: String(ports.submission),
    MAIL_SUBMISSIONS_PORT: String(ports.submissions),
    MAIL_AUTH_PORT: String(ports.auth),
    MAIL_LMTP_PORT: String(ports.lmtp),
    MAIL_TLS_CERT: options.tls?.certPath ?? '',
    MAIL_TLS_KEY: options.tls?.keyPath ?? '',
    MAIL_TLS_CA: options.tls?.caPath ?? '',
  };
  await runScript('up.sh', [options.stackDir], env, 900_000);
  const { stackDir } = options;
  return {
    host: '127.0.0.1',
    ports,
    caPem: await readFile(join(stackDir, 'tls', 'ca.pem'), 'utf8'),
    keyDictPath: join(stackDir, 'etc', 'oauth2-keys.dict'),
    stackDir,
    dovecotLogPath: join(stackDir, 'log', 'dovecot.log'),
    stop: () => runScript('down.sh', [stackDir], process.env, 30_000),
  };
}

/**
 * Starts the stack on ports the OS reports free: for tests and parallel runs, which must not
 * collide with `npm start` or with each other. Installs first, so that the ports are picked just
 * before the servers bind them, and picks again when one was taken in between anyway.
 */
export async function startMailServerOnFreePorts(options: Omit<MailServerOptions, 'ports'>): Promise<RunningMailServer> {
  await installMailServerPackages(join(options.stackDir, 'log', 'install.log'));
  for (let attempt = 1; ; attempt++) {
    const [imap, imaps, pop3, pop3s, submission, submissions, auth, lmtp] = (await freePorts(8)) as [number, number, number, number, number, number, number, number];
    try {
      return await startMailServer({ ...options, ports: { imap, imaps, pop3, pop3s, submission, submissions, auth, lmtp } });
    } catch (error) {
      if (!(error instanceof MailServerPortInUseError) || attempt === 3) throw error;
    }
  }
}

/** A public key that verifies tokens with this `kid` (and, when given, this `azp`). */
export interface SigningKey {
  kid: string;
  /** SPKI PEM ("-----BEGIN PUBLIC KEY-----"). Give this or `jwk`. */
  publicKeyPem?: string;
  jwk?: JsonWebKey;
  /**
   * Dovecot looks keys up under the token's `azp` claim, or under "default" when there is none
   * (Entra v1 tokens carry `appid` instead). A v2 token needs an entry for its azp.
   */
  azp?: string;
}

// Dovecot's file dict stores a key line and a value line, each escaped like its str_tabescape().
const TAB_ESCAPES: Readonly<Record<string, string>> = { '\x01': '\x011', '\t': '\x01t', '\r': '\x01r', '\n': '\x01n' };
function tabEscape(value: string): string {
  let escaped = '';
  for (const c of value) escaped += TAB_ESCAPES[c] ?? c;
  return escaped;
}

// Dovecot escapes "/" and "%" in the azp it looks up, so the stored path must match.
function escapeIdentifier(value: string): string {
  return value.replace(/[%/]/g, (c) => (c === '/' ? '%2f' : '%25'));
}

/**
 * Replaces the stack's signing keys (RS256). The file is written next to the old one and renamed
 * over it, because Dovecot re-reads the dict only when the file's inode changes.
 * Dovecot also caches a key per kid once it has used it: to rotate, use a new kid.
 */
export async function writeSigningKeys(keyDictPath: string, keys: readonly SigningKey[]): Promise<void> {
  let content = '';
  for (const key of keys) {
    // Some Dovecot builds do not escape the kid in the lookup path: refuse kids that would need it.
    if (!/^[\w.~-]+$/.test(key.kid)) throw new Error(`kid "${key.kid}" must consist of letters, digits and . _ ~ -`);
    if ((key.publicKeyPem === undefined) === (key.jwk === undefined)) {
      throw new Error(`signing key "${key.kid}" needs exactly one of publicKeyPem and jwk`);
    }
    const value = key.publicKeyPem?.trim() ?? JSON.stringify(key.jwk);
    content += `${tabEscape(`shared/${escapeIdentifier(key.azp ?? 'default')}/RS256/${key.kid}`)}\n${tabEscape(value)}\n`;
  }
  const temporary = `${keyDictPath}.${randomBytes(6).toString('hex')}.tmp`;
  await writeFile(temporary, content);
  try {
    // Dovecot's auth process runs as the "dovecot" user and must read the file, whatever the umask.
    await chmod(temporary, 0o644);
    await rename(temporary, keyDictPath);
  } catch (error) {
    await rm(temporary, { force: true });
    throw error;
  }
}

/**
 * How many IMAP commands of each name (`STATUS`, `EXAMINE`, `UID FETCH`, …) Dovecot has finished
 * for `user`'s sessions since the stack started, as its stats process counted them (the
 * `imap_command` metric of dovecot.conf.in, read with `doveadm stats dump`). Only commands after
 * login are counted: CAPABILITY and AUTHENTICATE belong to the login process. A session reports
 * each command a moment after answering it, so a caller that needs every command of a session
 * waits for its LOGOUT to be counted. Needs root, like the stack.
 */
export async function readImapCommandCounts(stackDir: string, user: string): Promise<Record<string, number>> {
  return imapCommandCountsIn(await dumpImapCommandStats(stackDir), user);
}

/** Dovecot's stats dump of the imap_command metric (`doveadm stats dump`), for imapCommandCountsIn. */
export function dumpImapCommandStats(stackDir: string): Promise<string> {
  return new Promise<string>((resolve, reject) => {
    execFile('doveadm', ['-c', join(stackDir, 'etc', 'dovecot.conf'), 'stats', 'dump', '-f', 'count'], { timeout: 10_000 }, (error, stdout, stderr) => {
      if (error) reject(new Error(`doveadm stats dump failed: ${stderr.trim() || error.message}`));
      else resolve(stdout);
    });
  });
}

/** One user's commands in a stats dump, by name. */
export function imapCommandCountsIn(dump: string, user: string): Record<string, number> {
  // One line per sub-metric, "imap_command_<user>_<command>\tduration\t<count>"; Dovecot writes
  // the spaces of a command name ("UID FETCH") as underscores, which no command name has of its own.
  const prefix = `imap_command_${user}_`;
  const counts: Record<string, number> = {};
  for (const line of dump.split('\n')) {
    const [name, field, count] = line.split('\t');
    if (name?.startsWith(prefix) && field === 'duration') counts[name.slice(prefix.length).replaceAll('_', ' ')] = Number(count);
  }
  return counts;
}
