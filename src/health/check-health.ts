import { redactText } from '../telemetry/redact.js';

/**
 * Readiness of what every function depends on: the storage services and the secret store.
 * Each probe runs at once with its own time limit; a failure is described by its kind and
 * status code only, never by a server message that might carry a secret.
 */

export type ProbeName = 'tableStorage' | 'queueStorage' | 'blobStorage' | 'secretStore';
export type Probe = () => Promise<unknown>;

export interface CheckResult {
  status: 'ok' | 'failed';
  durationMs: number;
  reason?: string;
}

export interface HealthReport {
  status: 'healthy' | 'unhealthy';
  /** When the probes ran (reports are reused for a few seconds). */
  checkedAt: string;
  checks: Record<ProbeName, CheckResult>;
}

export async function checkHealth(probes: Record<ProbeName, Probe>, timeoutMs = 5000): Promise<HealthReport> {
  const entries = await Promise.all(
    (Object.entries(probes) as [ProbeName, Probe][]).map(async ([name, probe]) => [name, await runProbe(probe, timeoutMs)] as const),
  );
  const checks = Object.fromEntries(entries) as Record<ProbeName, CheckResult>;
  const healthy = entries.every(([, result]) => result.status === 'ok');
  return { status: healthy ? 'healthy' : 'unhealthy', checkedAt: new Date().toISOString(), checks };
}

/**
 * The health endpoint is anonymous, so callers must not be able to turn it into load on storage
 * and Key Vault (whose throttling is vault-wide): one check runs at a time, and its report
 * answers every request for `ttlMs`.
 */
export function cachedHealthCheck(probes: Record<ProbeName, Probe>, options: { ttlMs?: number; timeoutMs?: number } = {}): () => Promise<HealthReport> {
  const ttlMs = options.ttlMs ?? 10_000;
  let current: { report: Promise<HealthReport>; expires: number } | undefined;
  return () => {
    const now = Date.now();
    if (!current || now >= current.expires) {
      const report = checkHealth(probes, options.timeoutMs);
      current = { report, expires: Number.POSITIVE_INFINITY };
      const entry = current;
      void report.then(() => {
        entry.expires = Date.now() + ttlMs;
      });
    }
    return current.report;
  };
}

async function runProbe(probe: Probe, timeoutMs: number): Promise<CheckResult> {
  const started = performance.now();
  let timer: NodeJS.Timeout | undefined;
  try {
    await Promise.race([
      probe(),
      new Promise((_, reject) => {
        timer = setTimeout(() => { reject(new ProbeTimeout(timeoutMs)); }, timeoutMs);
      }),
    ]);
    return { status: 'ok', durationMs: Math.round(performance.now() - started) };
  } catch (error) {
    return { status: 'failed', durationMs: Math.round(performance.now() - started), reason: describeFailure(error) };
  } finally {
    clearTimeout(timer);
  }
}

/** A failure whose message we wrote ourselves, so it is safe to show as it is. */
export class ProbeFailure extends Error {}

class ProbeTimeout extends ProbeFailure {
  constructor(ms: number) {
    super(`no answer within ${ms} ms`);
  }
}

/** "RestError 403 AuthorizationPermissionMismatch", "ECONNREFUSED", "no answer within 5000 ms". */
export function describeFailure(error: unknown): string {
  if (error instanceof ProbeFailure) return error.message;
  if (!(error instanceof Error)) return 'unknown error';
  const { statusCode, code } = error as Error & { statusCode?: unknown; code?: unknown };
  const parts = [error.name];
  if (typeof statusCode === 'number') parts.push(String(statusCode));
  if (typeof code === 'string') parts.push(code);
  const nested = (error as Error & { cause?: { code?: unknown } }).cause?.code;
  if (parts.length === 1 && typeof nested === 'string') parts.push(nested);
  return redactText(parts.join(' '));
}
