import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { mkdir, mkdtemp, readdir, readFile, rm, stat, unlink, utimes, writeFile } from 'node:fs/promises';
import { hostname, tmpdir } from 'node:os';
import { dirname, join, relative, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import ts from 'typescript';
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { LocalSecretStore } from '../../src/secrets/local-secret-store.js';
import { InvalidSecretNameError, type SecretListing } from '../../src/secrets/secret-store.js';

const VALUE = 'refresh-token-value-that-must-not-hit-the-disk';

interface StoreFileOnDisk {
  format: 2;
  secrets: Record<string, { name: string; versions: { version: string; ciphertext: string }[] }>;
}

describe('LocalSecretStore', () => {
  let directory: string;
  const noAzure = {};

  beforeEach(async () => {
    directory = join(await mkdtemp(join(tmpdir(), 'local-secret-store-')), 'secrets');
  });

  afterEach(async () => {
    await rm(join(directory, '..'), { recursive: true, force: true });
  });

  const dataPath = () => join(directory, 'secrets.json');
  const keyPath = () => join(directory, 'secret-store.key');
  const lockPath = () => join(directory, 'secrets.json.lock');
  const readData = async () => JSON.parse(await readFile(dataPath(), 'utf8')) as StoreFileOnDisk;

  it('returns what was stored, with its properties', async () => {
    const store = await LocalSecretStore.open(directory, noAzure);
    const expiresOn = new Date('2030-01-02T03:04:05.000Z');
    const stored = await store.set('conn-1-refresh-token', VALUE, { contentType: 'text/plain', tags: { customer: 'c1' }, expiresOn });

    expect(stored).toMatchObject({ name: 'conn-1-refresh-token', enabled: true, contentType: 'text/plain', tags: { customer: 'c1' }, expiresOn });
    expect(stored.version).toMatch(/^[0-9a-f]{32}$/);
    expect(await store.get('conn-1-refresh-token')).toEqual({ ...stored, value: VALUE });
    expect(await store.get('never-set')).toBeUndefined();
  });

  it('keeps every version: the latest by default, an older one by its version', async () => {
    const store = await LocalSecretStore.open(directory, noAzure);
    const first = await store.set('app-secret', 'first');
    const second = await store.set('app-secret', 'second');

    expect(await store.get('app-secret')).toMatchObject({ version: second.version, value: 'second' });
    expect(await store.get('app-secret', first.version)).toMatchObject({ version: first.version, value: 'first' });
    expect(await store.get('app-secret', 'f'.repeat(32))).toBeUndefined();
  });

  it('lists the latest properties of the secrets under a prefix, without values', async () => {
    const store = await LocalSecretStore.open(directory, noAzure);
    await store.set('conn-a-1', 'v1', { tags: { n: '1' } });
    await store.set('conn-a-2', 'v2');
    await store.set('conn-b-1', 'v3');
    const latest = await store.set('conn-a-1', 'v4', { tags: { n: '4' } });

    const listed = await collect(store.list('conn-a-'));
    expect(listed.map((p) => p.name).sort()).toEqual(['conn-a-1', 'conn-a-2']);
    expect(listed.find((p) => p.name === 'conn-a-1')).toMatchObject({ updatedOn: latest.updatedOn, tags: { n: '4' } });
    expect(listed.every((p) => !('value' in p) && !('version' in p))).toBe(true);
    expect(await collect(store.list())).toHaveLength(3);
  });

  it('deletes every version; deleting what is not there returns false', async () => {
    const store = await LocalSecretStore.open(directory, noAzure);
    const old = await store.set('webhook-secret', 'one');
    await store.set('webhook-secret', 'two');

    expect(await store.delete('webhook-secret')).toBe(true);
    expect(await store.get('webhook-secret')).toBeUndefined();
    expect(await store.get('webhook-secret', old.version)).toBeUndefined();
    expect(await collect(store.list())).toEqual([]);
    expect(await store.delete('webhook-secret')).toBe(false);
  });

  it('treats names that are also Object.prototype members as ordinary names', async () => {
    const store = await LocalSecretStore.open(directory, noAzure);
    expect(await store.get('constructor')).toBeUndefined();
    expect(await store.delete('toString')).toBe(false);
    await store.set('constructor', 'c');
    expect(await store.get('constructor')).toMatchObject({ value: 'c' });
    expect(await store.delete('constructor')).toBe(true);
  });

  it('writes no plaintext value to disk, and keeps its files owner-only', async () => {
    const store = await LocalSecretStore.open(directory, noAzure);
    await store.set('conn-1-refresh-token', VALUE);

    const onDisk = (await readFile(dataPath(), 'utf8')) + (await readFile(keyPath(), 'utf8'));
    expect(onDisk).not.toContain(VALUE);
    expect(onDisk).not.toContain(Buffer.from(VALUE).toString('base64'));
    expect((await stat(keyPath())).mode & 0o777).toBe(0o600);
    expect((await stat(dataPath())).mode & 0o777).toBe(0o600);
    expect((await stat(directory)).mode & 0o777).toBe(0o700);
  });

  it('refuses an altered ciphertext with an error that names the secret, not its value', async () => {
    const store = await LocalSecretStore.open(directory, noAzure);
    await store.set('app-secret', VALUE);
    const data = await readData();
    const stored = data.secrets['app-secret']?.versions[0];
    if (!stored) throw new Error('nothing stored');
    const bytes = Buffer.from(stored.ciphertext, 'base64');
    bytes[0] = (bytes[0] ?? 0) ^ 0x01;
    stored.ciphertext = bytes.toString('base64');
    await writeFile(dataPath(), JSON.stringify(data));

    const error: unknown = await store.get('app-secret').catch((e: unknown) => e);
    expect(error).toBeInstanceOf(Error);
    expect((error as Error).message).toMatch(/Secret "app-secret" cannot be decrypted .*altered/);
    expect((error as Error).message).not.toContain(VALUE);
  });

  it('refuses a ciphertext moved to another secret name or version', async () => {
    const store = await LocalSecretStore.open(directory, noAzure);
    await store.set('victim', VALUE);
    await store.set('attacker', 'attacker-value');
    await store.set('attacker', 'attacker-value-2');
    const data = await readData();
    const [victim] = data.secrets.victim?.versions ?? [];
    const [older, newer] = data.secrets.attacker?.versions ?? [];
    if (!victim || !older || !newer || !data.secrets.victim) throw new Error('nothing stored');
    newer.ciphertext = victim.ciphertext;
    data.secrets.victim.versions = [{ ...older }];
    await writeFile(dataPath(), JSON.stringify(data));

    await expect(store.get('attacker')).rejects.toThrow(/Secret "attacker" cannot be decrypted/);
    await expect(store.get('victim')).rejects.toThrow(/Secret "victim" cannot be decrypted/);
  });

  it('shares one key between instances on the same folder, even when they start together', async () => {
    const stores = await Promise.all(Array.from({ length: 8 }, () => LocalSecretStore.open(directory, noAzure)));
    const [writer, ...readers] = stores;
    if (!writer) throw new Error('no store');
    await writer.set('shared', VALUE);
    for (const reader of readers) expect(await reader.get('shared')).toMatchObject({ value: VALUE });
    const reopened = await LocalSecretStore.open(directory, noAzure);
    expect(await reopened.get('shared')).toMatchObject({ value: VALUE });
  });

  it('treats names case-insensitively and keeps the case they were first given, as Key Vault does', async () => {
    const store = await LocalSecretStore.open(directory, noAzure);
    await store.set('Conn-A-Token', 'first');
    await store.set('conn-a-token', 'second');
    expect(await store.get('CONN-A-TOKEN')).toMatchObject({ name: 'Conn-A-Token', value: 'second' });
    expect((await collect(store.list('conn-a'))).map((s) => s.name)).toEqual(['Conn-A-Token']);
    expect(await store.delete('CONN-a-token')).toBe(true);
    expect(await store.get('Conn-A-Token')).toBeUndefined();
  });

  it('refuses to open in Azure, before touching the disk', async () => {
    await expect(LocalSecretStore.open(directory, { WEBSITE_INSTANCE_ID: 'instance-1' })).rejects.toThrow(
      /does not run in Azure.*SECRET_STORE=keyvault/,
    );
    await expect(stat(directory)).rejects.toMatchObject({ code: 'ENOENT' });
  });

  it('rejects invalid names as Key Vault would, as a rejected promise', async () => {
    const store = await LocalSecretStore.open(directory, noAzure);
    for (const name of ['', 'under_score', 'with/slash', '__proto__', 'x'.repeat(128)]) {
      await expect(store.get(name)).rejects.toBeInstanceOf(InvalidSecretNameError);
      await expect(store.set(name, VALUE)).rejects.toBeInstanceOf(InvalidSecretNameError);
      await expect(store.delete(name)).rejects.toBeInstanceOf(InvalidSecretNameError);
    }
    await expect(stat(dataPath())).rejects.toMatchObject({ code: 'ENOENT' });
  });

  it('pings while the file is readable, and fails with the path when it is not', async () => {
    const store = await LocalSecretStore.open(directory, noAzure);
    await store.ping();
    await writeFile(dataPath(), '{ not json');
    await expect(store.ping()).rejects.toThrow(new RegExp(`${dataPath()} is unreadable`));
  });

  /** A lock file as another process leaves it: its details (or none yet), last modified `ageMs` ago. */
  async function leaveLock(holder: { pid: number; hostname: string } | undefined, ageMs = 0): Promise<void> {
    const since = new Date(Date.now() - ageMs);
    await mkdir(directory, { recursive: true });
    await writeFile(lockPath(), holder ? JSON.stringify({ ...holder, token: 'another-holder', since: since.toISOString() }) : '');
    await utimes(lockPath(), since, since);
  }

  it('keeps every write when instances on one folder write at once, each with its own queue as processes have', async () => {
    const stores = await Promise.all(Array.from({ length: 6 }, () => LocalSecretStore.open(directory, noAzure)));
    const writes = stores.flatMap((store, i) => [
      ...Array.from({ length: 5 }, (_, j) => ({ store, name: `instance-${i}-secret-${j}`, value: `value-${i}-${j}` })),
      { store, name: 'shared', value: `shared-from-${i}` },
    ]);
    const written = await Promise.all(writes.map(({ store, name, value }) => store.set(name, value)));

    const reader = await LocalSecretStore.open(directory, noAzure);
    for (const [i, { name, version }] of written.entries()) {
      expect(await reader.get(name, version)).toMatchObject({ value: writes[i]?.value });
    }
    expect(await collect(reader.list())).toHaveLength(6 * 5 + 1);
    expect((await readData()).secrets.shared?.versions).toHaveLength(6);
    // The lock is released and no temporary file is left.
    expect((await readdir(directory)).sort()).toEqual(['secret-store.key', 'secrets.json']);
  });

  it.each([
    { left: 'by a process of this machine that has exited', holder: async () => ({ pid: await exitedPid(), hostname: hostname() }), ageMs: 0 },
    { left: 'by a running process, but long ago', holder: () => ({ pid: process.pid, hostname: hostname() }), ageMs: 3_600_000 },
    { left: 'by a process of another machine, long ago', holder: () => ({ pid: process.pid, hostname: 'another-machine' }), ageMs: 3_600_000 },
    { left: 'before its details were written, long ago', holder: () => undefined, ageMs: 3_600_000 },
  ])('breaks a stale lock left $left, while several writers race to break it', async ({ holder, ageMs }) => {
    const stores = await Promise.all(Array.from({ length: 4 }, () => LocalSecretStore.open(directory, noAzure)));
    await leaveLock(await holder(), ageMs);

    const written = await Promise.all(stores.map((store, i) => store.set(`writer-${i}`, `value-${i}`)));
    for (const [i, { version }] of written.entries()) {
      expect(await stores[0]?.get(`writer-${i}`, version)).toMatchObject({ value: `value-${i}` });
    }
    expect((await readdir(directory)).sort()).toEqual(['secret-store.key', 'secrets.json']);
  });

  it.each([
    { held: 'by a running process of this machine', holder: () => ({ pid: process.pid, hostname: hostname() }) },
    // Its pid may be free here, or belong to anything: only the age tells whether it is stale.
    { held: 'by a process of another machine', holder: async () => ({ pid: await exitedPid(), hostname: 'another-machine' }) },
    { held: 'by a process still writing its details', holder: () => undefined },
  ])('waits for a fresh lock held $held, and fails naming the lock file when it is not released', async ({ holder }) => {
    const store = await LocalSecretStore.open(directory, noAzure, { lockTimeoutMs: 300 });
    await leaveLock(await holder());

    const started = Date.now();
    const error: unknown = await store.set('blocked', VALUE).catch((e: unknown) => e);
    expect(Date.now() - started).toBeGreaterThanOrEqual(300);
    expect(error).toBeInstanceOf(Error);
    expect((error as Error).message).toContain(`did not release ${lockPath()} within 0.3 s`);
    expect((error as Error).message).toContain(`delete ${lockPath()} and try again`);
    await expect(stat(lockPath())).resolves.toBeDefined();
    await expect(stat(dataPath())).rejects.toMatchObject({ code: 'ENOENT' });
  });

  it('names the holder of a lock it gave up waiting for', async () => {
    const store = await LocalSecretStore.open(directory, noAzure, { lockTimeoutMs: 100 });
    await leaveLock({ pid: process.pid, hostname: hostname() });
    await expect(store.set('blocked', VALUE)).rejects.toThrow(
      new RegExp(`locked by process ${process.pid} on ${hostname()} since \\d{4}-\\d\\d-\\d\\dT`),
    );
  });

  it('writes as soon as the holder releases the lock', async () => {
    const store = await LocalSecretStore.open(directory, noAzure);
    await leaveLock({ pid: process.pid, hostname: hostname() });
    const writing = store.set('after-release', VALUE);
    await new Promise((resolve) => setTimeout(resolve, 200));
    await expect(stat(dataPath())).rejects.toMatchObject({ code: 'ENOENT' });

    await unlink(lockPath());
    await writing;
    expect(await store.get('after-release')).toMatchObject({ value: VALUE });
  });
});

describe('LocalSecretStore used by several processes at once', () => {
  let workDirectory: string;
  let childScript: string;

  beforeAll(async () => {
    workDirectory = await mkdtemp(join(tmpdir(), 'local-secret-store-processes-'));
    const store = await transpileWithImports(fileURLToPath(new URL('../../src/secrets/local-secret-store.ts', import.meta.url)), workDirectory);
    childScript = join(workDirectory, 'set-secrets.js');
    // Opens its own store, says it is ready, waits for the word to start (so that all children write
    // at the same time), sets `count` secrets of its own and one version of "shared", and prints them.
    await writeFile(
      childScript,
      `import { LocalSecretStore } from ${JSON.stringify(`./${relative(workDirectory, store)}`)};
const [directory, prefix, count] = process.argv.slice(2);
const store = await LocalSecretStore.open(directory, {});
process.stdout.write('ready\\n');
await new Promise((resolve) => process.stdin.once('data', resolve));
const written = await Promise.all([
  ...Array.from({ length: Number(count) }, (_, i) => store.set(prefix + '-' + i, prefix + '-value-' + i)),
  store.set('shared', prefix),
]);
process.stdout.write(JSON.stringify(written.map(({ name, version }) => ({ name, version }))) + '\\n');
process.stdin.destroy();
`,
    );
  });

  afterAll(async () => {
    await rm(workDirectory, { recursive: true, force: true });
  });

  it('keeps every secret and every version that the processes set', async () => {
    const directory = join(workDirectory, 'secrets');
    const children = Array.from({ length: 5 }, (_, i) => {
      const child = spawn(process.execPath, [childScript, directory, `process-${i}`, '10'], { stdio: 'pipe' });
      let output = '';
      let errors = '';
      child.stdout.on('data', (chunk: Buffer) => (output += chunk.toString()));
      child.stderr.on('data', (chunk: Buffer) => (errors += chunk.toString()));
      const exited = once(child, 'exit') as Promise<[number | null]>;
      return { child, exited, output: () => output, errors: () => errors };
    });
    try {
      await Promise.all(
        children.map(async ({ child, output, errors }) => {
          while (!output().includes('ready\n')) {
            if (child.exitCode !== null) throw new Error(`a child exited before it was ready: ${errors()}`);
            await new Promise((resolve) => setTimeout(resolve, 10));
          }
        }),
      );
      for (const { child } of children) child.stdin.write('go\n');
      const written: { name: string; version: string }[] = [];
      for (const { exited, output, errors } of children) {
        const [code] = await exited;
        expect(code, errors()).toBe(0);
        written.push(...(JSON.parse(output().split('\n').at(-2) ?? '[]') as { name: string; version: string }[]));
      }

      const store = await LocalSecretStore.open(directory, {});
      expect(written).toHaveLength(5 * 11);
      for (const { name, version } of written) {
        const value = name === 'shared' ? undefined : name.replace(/-(\d+)$/, '-value-$1');
        expect(await store.get(name, version), `${name} ${version}`).toMatchObject(value === undefined ? { version } : { value });
      }
      expect(await collect(store.list())).toHaveLength(5 * 10 + 1);
      expect((await readdir(directory)).sort()).toEqual(['secret-store.key', 'secrets.json']);
    } finally {
      for (const { child } of children) child.kill();
    }
  });
});

async function collect(iterable: AsyncIterable<SecretListing>): Promise<SecretListing[]> {
  const items: SecretListing[] = [];
  for await (const item of iterable) items.push(item);
  return items;
}

/** The pid of a process that has run and exited, as a crashed holder leaves it. */
async function exitedPid(): Promise<number> {
  const child = spawn(process.execPath, ['-e', '']);
  await once(child, 'exit');
  if (child.pid === undefined) throw new Error('node did not start');
  return child.pid;
}

/**
 * The module at `entry` and the repository modules it imports, transpiled to JavaScript under
 * `outDirectory` in the same layout, for child processes: tests run without build output.
 * Returns the path of the transpiled entry.
 */
async function transpileWithImports(entry: string, outDirectory: string): Promise<string> {
  const root = fileURLToPath(new URL('../../', import.meta.url));
  const output = (file: string) => join(outDirectory, relative(root, file)).replace(/\.ts$/, '.js');
  const seen = new Set<string>();
  const pending = [entry];
  for (let file = pending.pop(); file !== undefined; file = pending.pop()) {
    if (seen.has(file)) continue;
    seen.add(file);
    const source = await readFile(file, 'utf8');
    for (const { fileName } of ts.preProcessFile(source).importedFiles) {
      if (fileName.startsWith('.')) pending.push(resolve(dirname(file), fileName.replace(/\.js$/, '.ts')));
    }
    const { outputText } = ts.transpileModule(source, {
      compilerOptions: { module: ts.ModuleKind.ESNext, target: ts.ScriptTarget.ES2023, verbatimModuleSyntax: true },
    });
    await mkdir(dirname(output(file)), { recursive: true });
    await writeFile(output(file), outputText);
  }
  await writeFile(join(outDirectory, 'package.json'), '{ "type": "module" }\n');
  return output(entry);
}
