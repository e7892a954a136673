import { RestError } from '@azure/storage-blob';
import type { PayloadStore } from '../store/payload-store.js';

/**
 * Received messages as they came (MIME), one blob each, under the day they arrived: retention is
 * then a matter of deleting whole days, without reading any row.
 */
export class InboxContent {
  constructor(private readonly store: PayloadStore) {}

  static blobName(receivedAt: Date, customerId: string, messageId: string): string {
    return `${receivedAt.toISOString().slice(0, 10)}/${customerId}/${messageId}.eml`;
  }

  async put(name: string, raw: Buffer): Promise<void> {
    await this.store.put(raw, { name, contentType: 'message/rfc822' });
  }

  /** The message, or undefined once retention has deleted it. */
  async get(name: string): Promise<Buffer | undefined> {
    try {
      return await this.store.get({ container: this.store.containerName, name, bytes: 0 });
    } catch (error) {
      if (error instanceof RestError && error.statusCode === 404) return undefined;
      throw error;
    }
  }

  /** Deletes the days that ended before `cutoff`; returns how many messages went. */
  async deleteBefore(cutoff: Date): Promise<number> {
    const lastKept = cutoff.toISOString().slice(0, 10);
    let deleted = 0;
    for (const day of await this.store.folders()) {
      if (/^\d{4}-\d{2}-\d{2}$/.test(day) && day < lastKept) deleted += await this.store.deleteFolder(day);
    }
    return deleted;
  }
}
