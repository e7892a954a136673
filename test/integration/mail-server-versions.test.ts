import { execFile } from 'node:child_process';
import { chmod, mkdtemp, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { delimiter, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { mailServerSupport, MailServerVersionError, startMailServer } from '../../local/sandbox/mail-server/index.js';

const SCRIPTS = fileURLToPath(new URL('../../local/sandbox/mail-server/', import.meta.url));
const DEBIAN_13_DOVECOT = '2.4.1-4 (7d8c0e5759)';

/**
 * The check up.sh makes right after installing Dovecot and Postfix, run against stand-ins for them
 * on PATH: no other Dovecot has to be installed to see what happens on a machine that has one.
 */
describe('mail server version check', () => {
  let directory: string;

  beforeEach(async () => {
    directory = await mkdtemp(join(tmpdir(), 'mail-versions-'));
    // up.sh's Dovecot sockets live below the stack directory, which must be reachable once Dovecot drops root.
    await chmod(directory, 0o755);
  });

  afterEach(async () => {
    vi.unstubAllEnvs();
    await rm(directory, { recursive: true, force: true });
  });

  /** A bin folder with the commands given, each printing its text; `dovecot` prints the version. */
  async function fakeBin(commands: Record<string, string>): Promise<string> {
    for (const [name, output] of Object.entries(commands)) {
      await writeFile(join(directory, name), `#!/bin/sh\necho '${output}'\n`, { mode: 0o755 });
    }
    return directory;
  }

  /** Runs the check with only the stand-ins on PATH: it needs nothing but bash builtins besides. */
  function check(bin: string): Promise<{ code: number; stderr: string }> {
    return new Promise((resolve) => {
      execFile('/bin/bash', [join(SCRIPTS, 'check-versions.sh')], { env: { PATH: bin } }, (error, stdout, stderr) => {
        resolve({ code: typeof error?.code === 'number' ? error.code : 0, stderr: stdout + stderr });
      });
    });
  }

  it.each(['2.3.19.1 (9b53102964)', '2.3.21.1 (d492236fa0)'])('accepts Dovecot %s', async (version) => {
    const bin = await fakeBin({ dovecot: version, doveconf: '', postfix: '' });
    expect(await check(bin)).toEqual({ code: 0, stderr: '' });
  });

  it.each([DEBIAN_13_DOVECOT, '2.2.36.4 (baf9232c1)', '3.0.0 (0123456789)'])(
    'refuses Dovecot %s with status 4, naming the version found and the one supported',
    async (version) => {
      const bin = await fakeBin({ dovecot: version, doveconf: '', postfix: '' });
      const { code, stderr } = await check(bin);
      expect(code).toBe(4);
      expect(stderr).toContain(`mail-server: Dovecot ${version.split(' ')[0] ?? ''} is installed, but this stack's configuration is written for Dovecot 2.3.x`);
      expect(stderr).toContain('Run the mail server stack on Debian 12');
    },
  );

  it.each(['dovecot', 'doveconf', 'postfix'])('fails with status 1 when %s is not on PATH', async (missing) => {
    const bin = await fakeBin(Object.fromEntries(['dovecot', 'doveconf', 'postfix'].filter((c) => c !== missing).map((c) => [c, '2.3.19.1'])));
    const { code, stderr } = await check(bin);
    expect(code).toBe(1);
    expect(stderr).toContain(`mail-server: ${missing} is not on PATH`);
    expect(stderr).toContain('/usr/sbin');
  });

  const support = mailServerSupport();
  it.runIf(support.runnable)('stops up.sh before it configures anything, and startMailServer says why', async () => {
    const bin = await fakeBin({ dovecot: DEBIAN_13_DOVECOT });
    // The fake Dovecot comes first; Postfix and everything else are the machine's own.
    vi.stubEnv('PATH', `${bin}${delimiter}${process.env.PATH ?? ''}`);
    const stackDir = join(directory, 'stack');

    const error: unknown = await startMailServer({ stackDir, tenants: ['contoso'] }).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(MailServerVersionError);
    expect((error as Error).message).toMatch(
      /^mail server start failed: mail-server: Dovecot 2\.4\.1-4 is installed, but this stack's configuration is written for Dovecot 2\.3\.x/,
    );
    await expect(stat(join(stackDir, 'etc', 'dovecot.conf'))).rejects.toMatchObject({ code: 'ENOENT' });
    await expect(stat(join(stackDir, 'run', 'dovecot.pid'))).rejects.toMatchObject({ code: 'ENOENT' });
  });
});
