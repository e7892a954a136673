import { execFile } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdir } from 'node:fs/promises';
import { createRequire } from 'node:module';
import { tmpdir } from 'node:os';
import { delimiter, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import type axe from 'axe-core';
import { chromium, type Browser, type BrowserContext, type Page } from 'playwright-core';
import { acquireFileLock } from '../../src/file-lock.js';

/**
 * Headless Chromium for the page tests: Debian's `chromium` package driven by playwright-core
 * (no browser download from a CDN). The install policy is the mail server's: when Chromium is
 * missing and this is root with apt-get, the first test run installs it; on CI, or wherever it
 * can be installed, failing to get it fails the tests; only a machine without root or apt-get
 * (and not CI) skips the browser tests, and says so loudly.
 */

const CHROMIUM_PATH = '/usr/bin/chromium';
const PACKAGE = 'chromium';

// --no-sandbox: the tests run as root, where Chromium's sandbox refuses to start. The rest keep a
// headless test browser from calling home: without them Chromium keeps trying Google's update,
// sync and field-trial servers, which on a closed network floods it with failing connections.
const LAUNCH_ARGS = [
  '--no-sandbox',
  '--disable-gpu',
  '--disable-quic',
  '--no-first-run',
  '--disable-background-networking',
  '--disable-component-update',
  '--disable-sync',
];

const SCREENSHOT_DIR = fileURLToPath(new URL('../../test-artifacts/screenshots/', import.meta.url));
const AXE_SCRIPT = createRequire(import.meta.url).resolve('axe-core/axe.min.js');

function onPath(command: string): boolean {
  return (process.env.PATH ?? '').split(delimiter).some((dir) => dir !== '' && existsSync(join(dir, command)));
}

/** Whether Chromium is here or can be installed here, and if not, why. */
export function chromiumSupport(): { runnable: true } | { runnable: false; reason: string } {
  if (existsSync(CHROMIUM_PATH)) return { runnable: true };
  const missing = `${CHROMIUM_PATH} is missing`;
  if (process.platform !== 'linux') return { runnable: false, reason: `${missing} and installing it needs Debian/Ubuntu (this is ${process.platform})` };
  if (process.getuid?.() !== 0) return { runnable: false, reason: `${missing} and installing it needs root: apt-get install ${PACKAGE}` };
  if (!onPath('apt-get')) return { runnable: false, reason: `${missing} and apt-get is not available to install ${PACKAGE}` };
  return { runnable: true };
}

/**
 * Why the browser tests cannot run on this machine, or undefined when they must run (and fail if
 * Chromium cannot be had). Call it while collecting tests, for `describe.skipIf`.
 */
export function browserTestsSkipReason(): string | undefined {
  const support = chromiumSupport();
  if (support.runnable || process.env.CI) return undefined;
  const lines = [
    'BROWSER TESTS WILL BE SKIPPED',
    `Reason: ${support.reason}.`,
    'The page tests need Debian\'s chromium, which the tests install with apt-get when run as root.',
    'Run them as root on Debian/Ubuntu (or in CI, where this is an error) to cover them.',
  ];
  const width = Math.max(...lines.map((line) => line.length));
  const border = `+${'-'.repeat(width + 2)}+`;
  console.warn(['', border, ...lines.map((line) => `| ${line.padEnd(width)} |`), border, ''].join('\n'));
  return support.reason;
}

function run(command: string, args: readonly string[], timeoutMs: number): Promise<{ ok: boolean; output: string }> {
  return new Promise((resolve) => {
    execFile(
      command,
      args,
      { env: { ...process.env, DEBIAN_FRONTEND: 'noninteractive' }, timeout: timeoutMs, maxBuffer: 64 * 1024 * 1024 },
      (error, stdout, stderr) => {
        resolve({ ok: !error, output: `${stdout}${stderr}${error?.killed ? `\n(stopped after ${timeoutMs / 1000} s)` : ''}` });
      },
    );
  });
}

let installation: Promise<void> | undefined;

/**
 * Installs Debian's chromium when it is missing. Test files run in parallel processes: a lock makes
 * the second one wait for the first install and then find Chromium there. Prints how long a real
 * install took, which is the cold-start cost of the browser tests.
 */
export function ensureChromium(): Promise<void> {
  installation ??= install();
  return installation;
}

async function install(): Promise<void> {
  if (existsSync(CHROMIUM_PATH)) return;
  const support = chromiumSupport();
  if (!support.runnable) throw new Error(`Chromium is needed for the browser tests: ${support.reason}.`);
  const lockDir = existsSync('/run/lock') ? '/run/lock' : tmpdir();
  const release = await acquireFileLock(join(lockDir, 'm365-connector-chromium-install.lock'), {
    timeoutMs: 900_000,
    staleMs: 1_800_000,
    holder: 'The Chromium installation for the browser tests',
  });
  try {
    if (existsSync(CHROMIUM_PATH)) return;
    const started = Date.now();
    const lockTimeout = ['-o', 'DPkg::Lock::Timeout=300'];
    // A fresh machine's package lists are stale; an unreachable extra source only makes `update`
    // fail for that source, and whether the install works is what counts.
    const update = await run('apt-get', [...lockTimeout, 'update'], 600_000);
    const result = await run('apt-get', [...lockTimeout, 'install', '-y', '--no-install-recommends', PACKAGE], 900_000);
    if (!result.ok || !existsSync(CHROMIUM_PATH)) {
      const tail = `${update.output}\n${result.output}`.trim().split('\n').slice(-15).join('\n');
      throw new Error(`apt-get install ${PACKAGE} failed; ${CHROMIUM_PATH} is still missing:\n${tail}`);
    }
    console.info(`Installed Debian's ${PACKAGE} for the browser tests in ${((Date.now() - started) / 1000).toFixed(1)} s.`);
  } finally {
    await release();
  }
}

/** Installs Chromium when needed and starts it headless, with the flags this machine needs. */
export async function launchChromium(): Promise<Browser> {
  await ensureChromium();
  return chromium.launch({ executablePath: CHROMIUM_PATH, headless: true, args: LAUNCH_ARGS });
}

/**
 * Makes every request of `context` to an origin other than `origins` (one, or several: a journey
 * through our pages and the identity platform's) fail, and records it: the pages must load nothing
 * from anywhere else, and a test asserts that the list stays empty. Playwright routes only the first
 * request of a redirect chain, so where a redirect leads is not refused here.
 */
export async function refuseOtherOrigins(context: BrowserContext, origins: string | readonly string[]): Promise<string[]> {
  const allowed = new Set(typeof origins === 'string' ? [origins] : origins);
  const refused: string[] = [];
  await context.route('**/*', async (route) => {
    const url = route.request().url();
    if (allowed.has(new URL(url).origin)) {
      await route.continue();
    } else {
      refused.push(url);
      await route.abort('blockedbyclient');
    }
  });
  return refused;
}

export type AxeImpact = NonNullable<axe.ImpactValue>;

export interface AxeViolation {
  id: string;
  impact: AxeImpact | null;
  help: string;
  helpUrl: string;
  nodes: { target: string; html: string; summary: string }[];
}

/**
 * Makes axe-core part of every page the context opens, before the page's own content: about twice
 * as fast as injecting it into each page afterwards, because Chromium compiles it while the page
 * loads instead of receiving half a megabyte over the protocol per page. An init script is not
 * governed by the page's Content-Security-Policy, so axe runs on pages under their real policy
 * (the connect journeys rely on that); only `axeViolations`' fallback, a script element, needs
 * `bypassCSP: true`.
 */
export async function preloadAxe(context: BrowserContext): Promise<void> {
  await context.addInitScript({ path: AXE_SCRIPT });
}

/**
 * axe-core's violations on the page as it is now, at the given impacts (all by default). Without
 * `preloadAxe`, axe is injected here as a script element (again needing `bypassCSP: true`).
 */
export async function axeViolations(page: Page, impacts?: readonly AxeImpact[]): Promise<AxeViolation[]> {
  if (!(await page.evaluate(() => 'axe' in globalThis))) await page.addScriptTag({ path: AXE_SCRIPT });
  const violations = await page.evaluate(async () => {
    const { axe: runner } = globalThis as unknown as { axe: typeof axe };
    const results = await runner.run({ resultTypes: ['violations'] });
    return results.violations.map((violation) => ({
      id: violation.id,
      impact: violation.impact ?? null,
      help: violation.help,
      helpUrl: violation.helpUrl,
      nodes: violation.nodes.map((node) => ({ target: node.target.join(' '), html: node.html, summary: node.failureSummary ?? '' })),
    }));
  });
  return impacts === undefined ? violations : violations.filter((violation) => violation.impact !== null && impacts.includes(violation.impact));
}

/** Saves a full-page screenshot as test-artifacts/screenshots/<name>.png and returns its path. */
export async function saveScreenshot(page: Page, name: string): Promise<string> {
  await mkdir(SCREENSHOT_DIR, { recursive: true });
  const path = join(SCREENSHOT_DIR, `${name.replace(/[^\w.-]+/g, '-')}.png`);
  await page.screenshot({ path, fullPage: true });
  return path;
}
