import { mkdir } from 'node:fs/promises';
import { dirname } from 'node:path';
import { writeFileAtomically } from '../../../src/atomic-file.js';
import { readFileIfExists } from '../../../src/read-file-if-exists.js';
import type { SandboxData } from './sandbox-state.js';
import type { SigningKeyMaterial } from './signing-key.js';

/**
 * The sandbox's memory on disk, for `npm start` to survive restarts: one JSON file with the
 * directory, apps, consents, sessions and tokens issued, and the signing key (so tokens issued
 * before a restart still verify, and the mail server's key dict stays right). Sign-in pages left
 * open and injected faults are not kept. The file holds secrets of test identities only; it is
 * written with mode 0600, whole or not at all.
 */

interface PersistedSandbox {
  version: 1;
  signingKey: SigningKeyMaterial;
  data: SandboxData;
}

export async function readStateFile(path: string): Promise<{ signingKey: SigningKeyMaterial; data: SandboxData } | undefined> {
  const text = await readFileIfExists(path);
  if (text === undefined) return undefined;
  const persisted = JSON.parse(text) as Omit<PersistedSandbox, 'version'> & { version: number };
  if (persisted.version !== 1) throw new Error(`${path} was written by another sandbox version; delete it to start over.`);
  return { signingKey: persisted.signingKey, data: persisted.data };
}

/** Saves after changes, one write at a time; changes made during a write are saved right after it. */
export class StateFile {
  private writing: Promise<void> | undefined;
  private dirty = false;

  constructor(
    private readonly path: string,
    private readonly snapshot: () => PersistedSandbox,
    private readonly onError: (error: unknown) => void,
  ) {}

  static contents(signingKey: SigningKeyMaterial, data: SandboxData): PersistedSandbox {
    return { version: 1, signingKey, data };
  }

  changed(): void {
    this.dirty = true;
    this.writing ??= this.drain().finally(() => {
      this.writing = undefined;
      // A change that came after the last write started, but after the loop looked, is saved now.
      if (this.dirty) this.changed();
    });
  }

  async flush(): Promise<void> {
    await this.writing;
  }

  private async drain(): Promise<void> {
    while (this.dirty) {
      this.dirty = false;
      try {
        await mkdir(dirname(this.path), { recursive: true, mode: 0o700 });
        await writeFileAtomically(this.path, JSON.stringify(this.snapshot()), 0o600);
      } catch (error) {
        this.onError(error);
      }
    }
  }
}
