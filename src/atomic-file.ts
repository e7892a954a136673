import { randomBytes } from 'node:crypto';
import { chmod, rename, writeFile } from 'node:fs/promises';

/**
 * Writes a file so that readers see the old content or the new, never half of it: a temporary
 * file in the same folder, then rename (atomic on POSIX file systems).
 */
export async function writeFileAtomically(path: string, content: string, mode = 0o600): Promise<void> {
  const temporary = `${path}.${process.pid}.${randomBytes(4).toString('hex')}.tmp`;
  await writeFile(temporary, content, { mode });
  // writeFile's mode is filtered by the umask; the file must end up exactly as asked.
  await chmod(temporary, mode);
  await rename(temporary, path);
}
