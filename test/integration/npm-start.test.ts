import { spawn } from 'node:child_process';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, describe, expect, it } from 'vitest';
import { freePorts, isPortFree } from '../../local/free-port.js';
import { SandboxBrowser, page } from '../support/sandbox-browser.js';
import { waitFor } from '../support/wait.js';


/**
 * `npm start` as a newcomer runs it: build, Azurite, the sandbox identity platform with its demo
 * tenant, storage layout, local host, health, and a printed consent link that connects.
 */
describe('npm start', () => {
  const repo = fileURLToPath(new URL('../../', import.meta.url));
  let dataDir: string | undefined;

  afterAll(async () => {
    if (dataDir) await rm(dataDir, { recursive: true, force: true });
  });

  it('answers GET /api/health, connects the demo tenant through the printed link, and stops everything on Ctrl-C', async () => {
    dataDir = await mkdtemp(join(tmpdir(), 'npm-start-'));
    const [port = 0, ...others] = await freePorts(6);
    const azurite = others.slice(0, 3);
    const sandbox = others.slice(3);
    const child = spawn(
      'npm',
      ['start', '--', '--port', String(port), '--azurite-ports', azurite.join(','), '--sandbox-ports', sandbox.join(','), '--data-dir', dataDir],
      {
        cwd: repo,
        detached: true,
        stdio: ['ignore', 'pipe', 'pipe'],
        env: { ...process.env, LOCAL_SECRET_STORE_DIR: join(dataDir, 'secrets'), LOG_LEVEL: 'info' },
      },
    );
    let output = '';
    child.stdout.on('data', (chunk: Buffer) => (output += chunk.toString()));
    child.stderr.on('data', (chunk: Buffer) => (output += chunk.toString()));
    const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) =>
      child.once('exit', (code, signal) => { resolve({ code, signal }); }),
    );

    try {
      const health = await waitFor(async () => {
        const response = await fetch(`http://127.0.0.1:${port}/api/health`);
        return response.status === 200 ? ((await response.json()) as { status: string; checks: Record<string, { status: string }> }) : undefined;
      }, 60_000).catch((error: unknown) => {
        throw new Error(`${String(error)}\n--- npm start output ---\n${output}`);
      });
      expect(health.status).toBe('healthy');
      expect(Object.values(health.checks).map((c) => c.status)).toEqual(['ok', 'ok', 'ok', 'ok']);
      expect(output).toContain(`http://localhost:${port}/api/health`);

      // The demo: the printed delegated link, the sandbox's account picker, the printed user.
      const link = /^\s+delegated:\s+(\S+)$/m.exec(output)?.[1];
      const user = /Sign in as (\S+) \(a user\)/.exec(output)?.[1];
      expect(link, output).toMatch(new RegExp(`^http://localhost:${port}/api/connect/`));
      expect(user, output).toMatch(/^megan@/);
      const landing = page(await new SandboxBrowser([]).open(link ?? ''));
      expect(landing.heading).toMatch(/^Connect Microsoft 365 mail to /);
      const picker = page(await landing.click('Continue to Microsoft'));
      expect(picker.url.origin).toBe(`http://localhost:${sandbox[1]}`);
      const consent = page(await picker.click(user ?? ''));
      const result = page(await consent.click('Accept'));
      expect(result.heading, result.text).toBe('Microsoft 365 is connected');
      expect(result.text).toContain(user);
    } finally {
      if (child.pid) process.kill(-child.pid, 'SIGINT');
    }
    // Ctrl-C reaches the whole process group, npm included, which then ends by the same signal;
    // what matters is that the connector shut down on its own and left nothing running.
    const { code, signal } = await exited;
    expect(code === 0 || signal === 'SIGINT', `npm exited with ${String(code)} / ${String(signal)}`).toBe(true);
    expect(output).toContain('Stopping…');
    for (const p of [port, ...azurite, ...sandbox]) expect(await isPortFree(p), `port ${p} released`).toBe(true);
  }, 120_000);
});
