import { randomBytes } from 'node:crypto';
import { link, open, unlink } from 'node:fs/promises';
import { hostname } from 'node:os';
import { setTimeout as sleep } from 'node:timers/promises';

/**
 * A lock file that several processes on one folder (or one shared folder on several machines)
 * respect: only one can create it (exclusive create); the others wait in short random steps, so
 * they do not retry in lockstep, and break it when it was left behind by a process that died.
 */

export interface FileLockOptions {
  /** How long to wait for the holder to release the lock before failing. */
  timeoutMs: number;
  /**
   * A lock older than this is taken as left behind by a process that died, even when its process
   * cannot be checked (another machine, a reused pid).
   */
  staleMs: number;
  /** Who waits, for the error message: "The local secret store in /path". */
  holder: string;
}

/** What a lock file says about its holder, so that others can tell a live lock from a stale one. */
interface LockHolder {
  pid: number;
  hostname: string;
  /** Tells the holder's own lock apart from one that replaced it after it was broken as stale. */
  token: string;
  since: string;
}

/** A lock file as seen at one moment: its inode, modification time and content identify it. */
interface LockSnapshot {
  dev: bigint;
  ino: bigint;
  mtimeNs: bigint;
  content: string;
}

/** Takes the lock at `path`; resolves to the function that releases it. */
export async function acquireFileLock(path: string, options: FileLockOptions): Promise<() => Promise<void>> {
  const token = randomBytes(16).toString('hex');
  const deadline = Date.now() + options.timeoutMs;
  for (;;) {
    if (await createLock(path, { pid: process.pid, hostname: hostname(), token, since: new Date().toISOString() })) {
      return () => releaseLock(path, token);
    }
    const held = await snapshotLock(path);
    // Released in the meantime, or a stale lock removed: try again at once.
    if (!held || (isStale(held, options.staleMs) && (await breakStaleLock(path, held)))) continue;
    if (Date.now() >= deadline) {
      const by = holderOf(held);
      throw new Error(
        `${options.holder} is locked by ${by ? `process ${by.pid} on ${by.hostname} since ${by.since}` : 'another process'}, ` +
          `which did not release ${path} within ${options.timeoutMs / 1000} s. ` +
          `If no connector or CLI process is using this folder any more, delete ${path} and try again.`,
      );
    }
    await sleep(5 + Math.random() * 20);
  }
}

/** Left behind: too old for any holder, or recorded by a process on this machine that no longer runs. */
function isStale(lock: LockSnapshot, staleMs: number): boolean {
  if (Date.now() - Number(lock.mtimeNs / 1_000_000n) > staleMs) return true;
  const holder = holderOf(lock);
  // A pid means nothing on another machine sharing the folder; there only the age counts.
  return holder !== undefined && holder.hostname === hostname() && !isRunning(holder.pid);
}

/** Creates the lock file with its holder's details; false when it exists already. */
async function createLock(path: string, holder: LockHolder): Promise<boolean> {
  let handle;
  try {
    handle = await open(path, 'wx', 0o600);
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'EEXIST') return false;
    throw error;
  }
  try {
    await handle.writeFile(JSON.stringify(holder));
    await handle.close();
    return true;
  } catch (error) {
    // A lock without its holder's details would be waited for until it is old enough to break.
    await handle.close().catch(() => undefined);
    await unlink(path).catch(() => undefined);
    throw error;
  }
}

/** Removes the lock only when it is still this holder's: one held past staleLockMs may have been broken and taken by another. */
async function releaseLock(path: string, token: string): Promise<void> {
  const held = await snapshotLock(path);
  if (held && holderOf(held)?.token === token) await unlinkIfPresent(path);
}

/**
 * Removes a stale lock without ever removing a live one. Other processes may judge the same lock
 * stale at the same moment, and one of them may already have removed it and taken a fresh lock by
 * the time this one acts; unlinking the path after a plain check could then remove that fresh lock.
 * So the lock is first given a second name derived from its identity: creating that name (a hard
 * link) succeeds for one process only, and shows what the path held at that instant. Only when that
 * is the very lock judged stale does this process remove the path; no other process can have
 * replaced it since, because nobody creates a lock while the path exists. Returns whether the path
 * is free to try again now.
 */
async function breakStaleLock(path: string, stale: LockSnapshot): Promise<boolean> {
  const aside = `${path}.${stale.ino}-${stale.mtimeNs}.stale`;
  try {
    await link(path, aside);
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code;
    // ENOENT: already gone. EEXIST: another process is breaking this same lock right now.
    if (code === 'ENOENT') return true;
    if (code === 'EEXIST') return false;
    throw error;
  }
  try {
    const linked = await snapshotLock(aside);
    if (!linked || !sameLock(linked, stale)) return false;
    await unlinkIfPresent(path);
    return true;
  } finally {
    await unlinkIfPresent(aside);
  }
}

/** Reads a lock's identity and content from one open file, so both describe the same file. */
async function snapshotLock(path: string): Promise<LockSnapshot | undefined> {
  let handle;
  try {
    handle = await open(path, 'r');
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw error;
  }
  try {
    const stats = await handle.stat({ bigint: true });
    return { dev: stats.dev, ino: stats.ino, mtimeNs: stats.mtimeNs, content: await handle.readFile('utf8') };
  } finally {
    await handle.close();
  }
}

/**
 * The same file, not a new one that reuses the inode number: a new lock has a later modification
 * time, or (created within the same clock tick) another holder's details or none yet.
 */
function sameLock(a: LockSnapshot, b: LockSnapshot): boolean {
  return a.dev === b.dev && a.ino === b.ino && a.mtimeNs === b.mtimeNs && a.content === b.content;
}

/** undefined while the holder is still writing its details, or when they are not a holder's. */
function holderOf(lock: LockSnapshot): LockHolder | undefined {
  try {
    const holder = JSON.parse(lock.content) as Partial<LockHolder> | null;
    if (typeof holder?.pid !== 'number' || typeof holder.hostname !== 'string') return undefined;
    if (typeof holder.token !== 'string' || typeof holder.since !== 'string') return undefined;
    return { pid: holder.pid, hostname: holder.hostname, token: holder.token, since: holder.since };
  } catch {
    return undefined;
  }
}

function isRunning(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (error) {
    // EPERM: it runs, as another user.
    return (error as NodeJS.ErrnoException).code === 'EPERM';
  }
}

async function unlinkIfPresent(path: string): Promise<void> {
  try {
    await unlink(path);
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code !== 'ENOENT') throw error;
  }
}
