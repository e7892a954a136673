import { execFile, spawn } from 'node:child_process';
import { mkdtemp, readFile, rm, symlink, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, it } from 'vitest';
import { median, printTable, writeResults } from './receive-measures.js';

/**
 * How long a new instance of the function app takes to load its code, against the least any
 * Functions app on Node pays: importing @azure/functions. Each sample is a fresh Node process (this
 * one's binary) that installs the local host's stand-in for @azure/functions-core (as the worker
 * provides it) and then imports, timed inside the process (wall, and the process's CPU):
 *   - entries: every functions/*.js of the build, sorted, one after the other, as the worker loads
 *     package.json "main" (no APPLICATIONINSIGHTS_CONNECTION_STRING, as locally);
 *   - bare: @azure/functions alone.
 * The two alternate for ROUNDS rounds, the first side alternating; the figure is the ratio of the
 * medians. Every TELEMETRY_EVERY-th round also imports the entries with a connection string (to a
 * closed loopback port; the process exits before anything is sent), as in Azure, where
 * src/telemetry/start.ts then loads the Azure Monitor distro before any function registers.
 * The whole process (spawn to exit, Node's own start included) is timed from here too.
 *
 * The build is the project's (tsc -p tsconfig.build.json, without type checking) into a temp
 * directory with node_modules linked in; the repo's dist/ is not touched.
 *
 * What loads: one more process records every module resolved and loaded (a module hook) and who
 * imported it. Per package: its modules, and the modules only it brings (those no longer reached
 * from the entries once the package's own modules are taken out of the import graph): what making
 * it a dynamic import would take off the start, as a count. With them, the app's files that import
 * the package statically.
 */

const ROUNDS = 12;
const TELEMETRY_EVERY = 3;
const root = fileURLToPath(new URL('..', import.meta.url));
const CHILD = 'cold-import.mjs';
const FAKE_CONNECTION_STRING = 'InstrumentationKey=00000000-0000-0000-0000-000000000000;IngestionEndpoint=http://127.0.0.1:9/;LiveEndpoint=http://127.0.0.1:9/';

let buildDir: string;
let buildMs: number;
const results: Record<string, unknown> = {};
const tables: { title: string; header: string[]; rows: string[][] }[] = [];

/**
 * The fresh process. Modes: bare | entries | graph (entries, recording every import edge and
 * module loaded). Prints one line: import wall and CPU time, the time of each entry file after
 * the ones before it, memory after, and in graph mode the edges, as JSON to the file named.
 */
const CHILD_SOURCE = `
import { registerHooks } from 'node:module';
import { readdirSync, statSync, writeFileSync } from 'node:fs';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { join } from 'node:path';
const [mode, out] = process.argv.slice(2);
const here = fileURLToPath(new URL('.', import.meta.url));
const edges = [];
const bytes = {};
if (mode === 'graph') {
  registerHooks({
    resolve(specifier, context, nextResolve) {
      const result = nextResolve(specifier, context);
      edges.push([context.parentURL ?? '', result.url]);
      return result;
    },
    load(url, context, nextLoad) {
      if (url.startsWith('file:') && !(url in bytes)) try { bytes[url] = statSync(fileURLToPath(url)).size; } catch { bytes[url] = 0; }
      return nextLoad(url, context);
    },
  });
}
const { installCoreApi } = await import(pathToFileURL(join(here, 'local/host/core-api.js')).href);
const registry = installCoreApi(() => undefined);
const entries = readdirSync(join(here, 'functions')).filter((name) => name.endsWith('.js')).sort();
const cpu = process.cpuUsage();
const started = performance.now();
const perEntry = {};
if (mode === 'bare') await import('@azure/functions');
else for (const entry of entries) {
  const before = performance.now();
  await import(pathToFileURL(join(here, 'functions', entry)).href);
  perEntry[entry] = performance.now() - before;
}
const importMs = performance.now() - started;
const used = process.cpuUsage(cpu);
const memory = process.memoryUsage();
// To a file: what a pipe still holds is lost when the process exits.
writeFileSync(out, JSON.stringify({ importMs, importCpuMs: (used.user + used.system) / 1000, perEntry, rss: memory.rss, heapUsed: memory.heapUsed, functions: registry.functions.size, ...(mode === 'graph' && { edges, bytes, entries: entries.map((entry) => pathToFileURL(join(here, 'functions', entry)).href) }) }));
process.exit(0);
`;

interface Sample {
  importMs: number;
  importCpuMs: number;
  perEntry: Record<string, number>;
  /** Spawn to exit, as seen from here. */
  processMs: number;
  rss: number;
  heapUsed: number;
  functions: number;
  edges?: [string, string][];
  bytes?: Record<string, number>;
  entries?: string[];
}

beforeAll(async () => {
  buildDir = await mkdtemp(join(tmpdir(), 'cold-start-'));
  const started = performance.now();
  await run(process.execPath, [join(root, 'node_modules/typescript/bin/tsc'), '-p', join(root, 'tsconfig.build.json'), '--outDir', buildDir, '--noCheck', '--sourceMap', 'false', '--declaration', 'false'], root);
  buildMs = performance.now() - started;
  await symlink(join(root, 'node_modules'), join(buildDir, 'node_modules'), 'dir');
  await writeFile(join(buildDir, 'package.json'), `${JSON.stringify({ type: 'module', main: 'functions/*.js' })}\n`);
  await writeFile(join(buildDir, CHILD), CHILD_SOURCE);
}, 120_000);

afterAll(async () => {
  for (const table of tables) printTable(table.title, table.header, table.rows);
  await writeResults('cold-start', results);
  await rm(buildDir, { recursive: true, force: true });
});

it('imports the function app in a fresh process, against bare @azure/functions', async () => {
  const telemetryEnv = { APPLICATIONINSIGHTS_CONNECTION_STRING: FAKE_CONNECTION_STRING, APPLICATIONINSIGHTS_STATSBEAT_DISABLED: 'true' };
  // Warm-up: the files into the page cache.
  await child('entries');
  await child('bare');
  const samples = { bare: [] as Sample[], entries: [] as Sample[], telemetry: [] as Sample[] };
  for (let round = 0; round < ROUNDS; round++) {
    if (round % 2 === 0) {
      samples.bare.push(await child('bare'));
      samples.entries.push(await child('entries'));
    } else {
      samples.entries.push(await child('entries'));
      samples.bare.push(await child('bare'));
    }
    if (round % TELEMETRY_EVERY === 1) samples.telemetry.push(await child('entries', telemetryEnv));
  }
  const summary = (list: Sample[]) => ({
    samples: list.length,
    importMs: median(list.map((s) => s.importMs)),
    importCpuMs: median(list.map((s) => s.importCpuMs)),
    processMs: median(list.map((s) => s.processMs)),
    rssMiB: median(list.map((s) => s.rss)) / 1048576,
    heapUsedMiB: median(list.map((s) => s.heapUsed)) / 1048576,
    functions: list[0]?.functions ?? 0,
    perEntryMs: Object.fromEntries(Object.keys(list[0]?.perEntry ?? {}).map((entry) => [entry, median(list.map((s) => s.perEntry[entry] ?? 0))])),
  });
  const bare = summary(samples.bare);
  const entries = summary(samples.entries);
  const telemetry = summary(samples.telemetry);
  const ratios = (side: typeof bare) => ({ import: side.importMs / bare.importMs, importCpu: side.importCpuMs / bare.importCpuMs, process: side.processMs / bare.processMs });
  results.coldStart = { rounds: ROUNDS, buildMs, bare, entries, telemetry, ratio: { entries: ratios(entries), telemetry: ratios(telemetry) } };
  const x = (value: number) => `${value.toFixed(2)}×`;
  const row = (label: string, side: typeof bare) => {
    const r = ratios(side);
    return [label, String(side.samples), String(side.functions), ms(side.importMs), x(r.import), ms(side.importCpuMs), x(r.importCpu), ms(side.processMs), x(r.process), `${side.rssMiB.toFixed(0)} MiB`, `${side.heapUsedMiB.toFixed(0)} MiB`];
  };
  tables.push({
    title: `Cold start: importing the function app in a fresh Node process (medians; ratios to @azure/functions alone; build ${(buildMs / 1000).toFixed(1)} s)`,
    header: ['import', 'samples', 'functions', 'import wall', 'ratio', 'import CPU', 'ratio', 'process spawn → exit', 'ratio', 'RSS after', 'heap after'],
    rows: [
      row('functions/*.js (telemetry off, as locally)', entries),
      row('functions/*.js, connection string set (as in Azure)', telemetry),
      row('@azure/functions alone (baseline)', bare),
      ...Object.entries(entries.perEntryMs).map(([entry, time]) => [`  ${entry}, after those before it`, '', '', ms(time), x(time / bare.importMs), '', '', '', '', '', '']),
    ],
  });
});

it('what loads at import: modules by package, and what a dynamic import of each would take off', async () => {
  const sample = await child('graph');
  const graph = new Map<string, Set<string>>();
  for (const [from, to] of sample.edges ?? []) {
    if (!graph.has(from)) graph.set(from, new Set());
    graph.get(from)?.add(to);
  }
  const entries = sample.entries ?? [];
  const reached = (without: (url: string) => boolean) => {
    const seen = new Set<string>();
    const stack = entries.filter((url) => !without(url));
    while (stack.length > 0) {
      const url = stack.pop() ?? '';
      if (seen.has(url)) continue;
      seen.add(url);
      for (const next of graph.get(url) ?? []) if (!seen.has(next) && !without(next)) stack.push(next);
    }
    return seen;
  };
  const all = reached(() => false);
  const modules = [...all].filter((url) => !url.startsWith('node:'));
  const bytes = (urls: Iterable<string>) => [...urls].reduce((sum, url) => sum + (sample.bytes?.[url] ?? 0), 0);
  const byPackage = new Map<string, string[]>();
  for (const url of modules) {
    const name = packageOf(url);
    byPackage.set(name, [...(byPackage.get(name) ?? []), url]);
  }
  const rows = [...byPackage.entries()]
    .filter(([name]) => !name.startsWith('('))
    .map(([name, own]) => {
      const without = reached((url) => packageOf(url) === name);
      const only = modules.filter((url) => !without.has(url));
      // The app's files that import the package: where a dynamic import would go.
      const importers = new Set<string>();
      for (const [from, to] of sample.edges ?? []) if (packageOf(to) === name && packageOf(from).startsWith('(the app')) importers.add(from.slice(from.indexOf(buildDir) + buildDir.length + 1).replace(/\.js$/, '.ts'));
      return { name, modules: own.length, bytes: bytes(own), onlyModules: only.length, onlyBytes: bytes(only), importers: [...importers].sort() };
    })
    .sort((a, b) => b.onlyBytes - a.onlyBytes);
  const app = byPackage.get('(the app)') ?? [];
  results.modulesAtImport = { total: modules.length, bytes: bytes(modules), app: { modules: app.length, bytes: bytes(app) }, packages: rows };
  const kib = (n: number) => `${(n / 1024).toFixed(0)} KiB`;
  tables.push({
    title: `What importing functions/*.js loads (telemetry off): ${String(modules.length)} modules, ${kib(bytes(modules))} of source (the app's own: ${String(app.length)}, ${kib(bytes(app))}); packages by what only they bring, largest first`,
    header: ['package', 'its modules', 'its source', 'modules only it brings', 'source only it brings', 'imported by (the app\'s files, statically)'],
    rows: rows.slice(0, 20).map((r) => [r.name, String(r.modules), kib(r.bytes), String(r.onlyModules), kib(r.onlyBytes), importedBy(r.importers)]),
  });
});

function importedBy(files: readonly string[]): string {
  if (files.length === 0) return '(other packages only)';
  return files.length <= 3 ? files.join(', ') : `${files.slice(0, 3).join(', ')} and ${String(files.length - 3)} more`;
}

/** "name" or "@scope/name" of a node_modules URL (the innermost node_modules), or where else it is from. */
function packageOf(url: string): string {
  if (url.startsWith('node:')) return '(node: built-ins)';
  if (!url.startsWith('file:')) return '(other)';
  const path = fileURLToPath(url);
  const at = path.lastIndexOf('/node_modules/');
  if (at < 0) return path.startsWith(buildDir) ? '(the app)' : '(other)';
  const parts = path.slice(at + '/node_modules/'.length).split('/');
  return parts[0]?.startsWith('@') ? `${parts[0]}/${parts[1] ?? ''}` : (parts[0] ?? '?');
}

/** One fresh process in a clean environment (nothing of this test process, such as NODE_OPTIONS, leaks in). */
let children = 0;

function child(mode: 'bare' | 'entries' | 'graph', env: Record<string, string> = {}): Promise<Sample> {
  const out = join(buildDir, `sample-${String(children++)}.json`);
  return new Promise<number>((resolve, reject) => {
    const started = performance.now();
    const spawned = spawn(process.execPath, [join(buildDir, CHILD), mode, out], { cwd: buildDir, env: { PATH: process.env.PATH ?? '', HOME: process.env.HOME ?? '', ...env }, stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    spawned.stdout.on('data', (chunk: Buffer) => (stdout += chunk.toString()));
    spawned.stderr.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
    spawned.on('error', reject);
    spawned.on('close', (code) => {
      if (code === 0) resolve(performance.now() - started);
      else reject(new Error(`the import process (${mode}) exited with ${String(code)}: ${stdout.slice(0, 1000)}${stderr.slice(0, 2000)}`));
    });
  }).then(async (processMs) => {
    const sample = JSON.parse(await readFile(out, 'utf8')) as Omit<Sample, 'processMs'>;
    await rm(out);
    return { ...sample, processMs };
  });
}

function run(command: string, args: string[], cwd: string): Promise<void> {
  return new Promise((resolve, reject) => {
    execFile(command, args, { cwd, maxBuffer: 16 * 1024 * 1024 }, (error, stdout, stderr) => {
      if (error) reject(new Error(`${args.join(' ')} failed: ${stdout}${stderr}`.slice(0, 4000)));
      else resolve();
    });
  });
}

const ms = (value: number) => `${value.toFixed(0)} ms`;
