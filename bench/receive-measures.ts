import { subscribe, unsubscribe } from 'node:diagnostics_channel';
import type { ClientRequest } from 'node:http';
import { mkdir, readFile, readdir, writeFile } from 'node:fs/promises';
import { availableParallelism } from 'node:os';
import { join } from 'node:path';

/**
 * What the receive benchmark measures with, apart from the clock: requests to Azurite's Table
 * service as this process sends them, the CPU time of the Dovecot processes, percentiles, and the
 * table and JSON file every benchmark here leaves behind.
 */

/** Nearest-rank percentile (p in 0..100) of a non-empty list. */
export function percentile(values: readonly number[], p: number): number {
  const sorted = [...values].sort((a, b) => a - b);
  const rank = Math.max(1, Math.ceil((p / 100) * sorted.length));
  return sorted[Math.min(rank, sorted.length) - 1] ?? Number.NaN;
}

export function mean(values: readonly number[]): number {
  return values.reduce((sum, value) => sum + value, 0) / values.length;
}

export function median(values: readonly number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  const middle = Math.floor(sorted.length / 2);
  return sorted.length % 2 ? (sorted[middle] ?? 0) : ((sorted[middle - 1] ?? 0) + (sorted[middle] ?? 0)) / 2;
}

/**
 * Counts what a Node diagnostics channel reports about this process's HTTP traffic, by a key the
 * subclass makes of each message (undefined: not counted). Nothing in the request path changes; a
 * subscriber only adds to a counter.
 */
export abstract class HttpChannelCounter {
  private readonly counts = new Map<string, number>();
  private readonly listener = (message: unknown) => {
    const key = this.keyOf(message);
    if (key !== undefined) this.counts.set(key, (this.counts.get(key) ?? 0) + 1);
  };

  constructor(private readonly channel: string) {
    subscribe(channel, this.listener);
  }

  protected abstract keyOf(message: unknown): string | undefined;

  /** Counted so far, by key. */
  snapshot(): Record<string, number> {
    return Object.fromEntries(this.counts);
  }

  close(): void {
    unsubscribe(this.channel, this.listener);
  }
}

/**
 * Counts this process's HTTP requests to the given hosts (host:port) that failed on the network,
 * by host and error code ("127.0.0.1:10001 ECONNRESET"), through `http.client.request.error`. The
 * Azure SDKs retry such a request, the Queue and Blob ones after 0, 4 and 12 s: a count here beside
 * a slow look says where its time went.
 */
export class NetworkErrorCounter extends HttpChannelCounter {
  constructor(private readonly hostPorts: ReadonlySet<string>) {
    super('http.client.request.error');
  }

  protected keyOf(message: unknown): string | undefined {
    const { request, error } = message as { request?: ClientRequest; error?: { code?: string } };
    const host = String(request?.getHeader('host') ?? '');
    return this.hostPorts.has(host) ? `${host} ${error?.code ?? 'error'}` : undefined;
  }
}

/**
 * The slowest HTTP requests this process sent to the given hosts, from `http.client.request.start`
 * to `http.client.response.finish` (or `http.client.request.error`): where a stall's time went,
 * when the stall was in storage.
 */
export class SlowestRequests {
  private readonly started = new WeakMap<ClientRequest, number>();
  private readonly slowest: { ms: number; at: number; request: string; outcome: string }[] = [];
  private readonly onStart = (message: unknown) => {
    const { request } = message as { request: ClientRequest };
    if (this.hostPorts.has(String(request.getHeader('host') ?? ''))) this.started.set(request, performance.now());
  };
  private readonly onFinish = (message: unknown) => {
    const { request, response, error } = message as { request: ClientRequest; response?: { statusCode?: number }; error?: { code?: string } };
    const begun = this.started.get(request);
    if (begun === undefined) return;
    this.started.delete(request);
    const ms = performance.now() - begun;
    if (this.slowest.length >= this.keep && ms <= (this.slowest.at(-1)?.ms ?? 0)) return;
    const path = request.path.split('?')[0] ?? '';
    this.slowest.push({ ms, at: Date.now() - ms, request: `${request.method} ${request.getHeader('host') as string}${path}`, outcome: error ? (error.code ?? 'error') : String(response?.statusCode ?? '?') });
    this.slowest.sort((a, b) => b.ms - a.ms);
    this.slowest.length = Math.min(this.slowest.length, this.keep);
  };

  constructor(
    private readonly hostPorts: ReadonlySet<string>,
    private readonly keep = 5,
  ) {
    subscribe('http.client.request.start', this.onStart);
    subscribe('http.client.response.finish', this.onFinish);
    subscribe('http.client.request.error', this.onFinish);
  }

  /** The slowest so far, slowest first, and forgets them. */
  take(): { ms: number; at: number; request: string; outcome: string }[] {
    return this.slowest.splice(0);
  }

  close(): void {
    unsubscribe('http.client.request.start', this.onStart);
    unsubscribe('http.client.response.finish', this.onFinish);
    unsubscribe('http.client.request.error', this.onFinish);
  }
}

/** host:port of every service (Blob, Queue, Table) a storage connection string names. */
export function storageHostPorts(connectionString: string): Set<string> {
  return new Set((['Blob', 'Queue', 'Table'] as const).map((service) => storageHostPort(connectionString, service)));
}

/** The table a request to the Table service names: /<account>/<table>(…)?… */
export function tableOf(request: ClientRequest): string {
  return /^\/[^/]+\/([A-Za-z0-9]+)/.exec(request.path)?.[1] ?? '?';
}

/**
 * Counts the HTTP requests this process sends to one host:port (Azurite's Table service), by
 * method and table ("GET receivestate"), through `http.client.request.start`: the Azure SDK sends
 * every table operation as one request, and a batch as one too.
 */
export class RequestCounter extends HttpChannelCounter {
  constructor(private readonly hostPort: string) {
    super('http.client.request.start');
  }

  protected keyOf(message: unknown): string | undefined {
    const request = (message as { request?: ClientRequest }).request;
    if (request?.getHeader('host') !== this.hostPort) return undefined;
    return `${request.method} ${tableOf(request)}`;
  }
}

/** host:port of one service (Blob, Queue or Table) in a storage connection string. */
export function storageHostPort(connectionString: string, service: 'Blob' | 'Queue' | 'Table'): string {
  const endpoint = new RegExp(`${service}Endpoint=([^;]+)`).exec(connectionString)?.[1];
  if (!endpoint) throw new Error(`the storage connection string names no ${service}Endpoint`);
  const url = new URL(endpoint);
  return `${url.hostname}:${url.port}`;
}

/** host:port of the Table service in a storage connection string. */
export function tableHostPort(connectionString: string): string {
  return storageHostPort(connectionString, 'Table');
}

const CLOCK_TICKS_PER_SECOND = 100;

/**
 * CPU time (user + system, ms) of a process tree on Linux: every live process under `rootPid`
 * and, through the root's cutime/cstime, the children it has already reaped. Dovecot's master
 * reaps each finished login and imap process, so this covers every session's cost at the server.
 * The kernel counts in clock ticks of 10 ms; a pass of a few hundred sessions makes that small.
 */
export async function processTreeCpuMs(rootPid: number): Promise<number> {
  const stats = new Map<number, { parent: number; own: number; reaped: number }>();
  for (const entry of await readdir('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    const text = await readFile(join('/proc', entry, 'stat'), 'utf8').catch(() => undefined);
    if (text === undefined) continue;
    // The command name is in parentheses and may hold spaces: the fields after it start at its last ')'.
    const fields = text.slice(text.lastIndexOf(')') + 2).split(' ');
    const number = (index: number) => Number(fields[index] ?? 0);
    // Fields from state (3rd in the file): ppid 4th, utime 14th, stime 15th, cutime 16th, cstime 17th.
    stats.set(Number(entry), { parent: number(1), own: number(11) + number(12), reaped: number(13) + number(14) });
  }
  let ticks = stats.get(rootPid)?.reaped ?? 0;
  const inTree = (pid: number): boolean => {
    for (let current: number | undefined = pid, depth = 0; current !== undefined && current > 1 && depth < 64; depth++) {
      if (current === rootPid) return true;
      current = stats.get(current)?.parent;
    }
    return false;
  };
  for (const [pid, stat] of stats) if (inTree(pid)) ticks += stat.own;
  return (ticks * 1000) / CLOCK_TICKS_PER_SECOND;
}

/** Prints rows under a header, columns padded. */
export function printTable(title: string, header: string[], rows: string[][]): void {
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((row) => (row[i] ?? '').length)));
  const line = (cells: string[]) => cells.map((cell, i) => cell.padEnd(widths[i] ?? 0)).join('  ');
  console.log(['', title, line(header), line(widths.map((w) => '-'.repeat(w))), ...rows.map(line), ''].join('\n'));
}

/** Writes bench/results/<file>.json. */
export async function writeResults(file: string, content: Record<string, unknown>): Promise<void> {
  const directory = new URL('results/', import.meta.url);
  await mkdir(directory, { recursive: true });
  await writeFile(new URL(`${file}.json`, directory), `${JSON.stringify({ node: process.version, cpus: availableParallelism(), ...content }, null, 2)}\n`);
}

export const ms = (value: number, digits = 0) => `${value.toFixed(digits)} ms`;
