import { RestError, type BlobServiceClient, type ContainerClient } from '@azure/storage-blob';
import { randomUUID } from 'node:crypto';

/**
 * Blob storage for payloads too large for a queue message (and, later, message bodies and
 * attachments). Names are generated; callers keep the returned reference.
 */
export interface PayloadRef {
  container: string;
  name: string;
  bytes: number;
}

export class PayloadStore {
  private readonly container: ContainerClient;
  private ensured: Promise<unknown> | undefined;

  constructor(blobService: BlobServiceClient, readonly containerName: string) {
    this.container = blobService.getContainerClient(containerName);
  }

  async put(data: Buffer, options: { prefix?: string; contentType?: string } = {}): Promise<PayloadRef> {
    const name = `${options.prefix ? `${options.prefix}/` : ''}${new Date().toISOString().slice(0, 10)}/${randomUUID()}`;
    const blob = this.container.getBlockBlobClient(name);
    const upload = () =>
      blob.uploadData(data, { blobHTTPHeaders: { blobContentType: options.contentType ?? 'application/octet-stream' } });
    try {
      await upload();
    } catch (error) {
      if (!(error instanceof RestError && error.statusCode === 404)) throw error;
      await this.ensureContainer();
      await upload();
    }
    return { container: this.containerName, name, bytes: data.byteLength };
  }

  async get(ref: PayloadRef): Promise<Buffer> {
    this.assertOwn(ref);
    return this.container.getBlockBlobClient(ref.name).downloadToBuffer();
  }

  /** Removes the payload; succeeds when it is already gone, so callers can retry freely. */
  async delete(ref: PayloadRef): Promise<void> {
    this.assertOwn(ref);
    await this.container.getBlockBlobClient(ref.name).deleteIfExists();
  }

  async exists(): Promise<boolean> {
    return this.container.exists();
  }

  private ensureContainer(): Promise<unknown> {
    this.ensured ??= this.container.createIfNotExists().catch((error: unknown) => {
      this.ensured = undefined;
      throw error;
    });
    return this.ensured;
  }

  private assertOwn(ref: PayloadRef): void {
    if (ref.container !== this.containerName || ref.name.includes('..')) {
      throw new RangeError(`Payload reference outside container '${this.containerName}'`);
    }
  }
}
