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

/** How often a download resumes after its connection broke before it fails. */
const DOWNLOAD_RESUMES = 3;

export class PayloadStore {
  private readonly container: ContainerClient;
  private ensured: Promise<unknown> | undefined;

  constructor(blobService: BlobServiceClient, readonly containerName: string) {
    this.container = blobService.getContainerClient(containerName);
  }

  /** Stores `data` under a generated name (below `prefix`), or under `name` when the caller must find it again by its own id. */
  async put(data: Buffer, options: { prefix?: string; name?: string; contentType?: string } = {}): Promise<PayloadRef> {
    const name = options.name ?? `${options.prefix ? `${options.prefix}/` : ''}${new Date().toISOString().slice(0, 10)}/${randomUUID()}`;
    if (name.includes('..')) throw new RangeError('A payload name cannot contain ".."');
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

  /**
   * The payload's bytes in one GET (the SDK's downloadToBuffer first asks for the size: a second
   * billed request on every send). A dropped connection resumes where it broke; a body shorter
   * than the blob is refused rather than returned cut short.
   */
  async get(ref: PayloadRef): Promise<Buffer> {
    this.assertOwn(ref);
    const response = await this.container.getBlockBlobClient(ref.name).download(0, undefined, { maxRetryRequests: DOWNLOAD_RESUMES });
    const size = response.contentLength ?? 0;
    const data = Buffer.allocUnsafe(size);
    let filled = 0;
    for await (const chunk of response.readableStreamBody ?? []) {
      const bytes = chunk as Buffer;
      if (filled + bytes.byteLength > size) throw new RangeError(`Payload ${ref.name} is longer than the ${String(size)} bytes Blob storage announced`);
      bytes.copy(data, filled);
      filled += bytes.byteLength;
    }
    if (filled !== size) throw new RangeError(`Payload ${ref.name} ended after ${String(filled)} of ${String(size)} bytes`);
    return data;
  }

  /** Size and type of a named payload, or undefined when there is none. */
  async describe(name: string): Promise<{ ref: PayloadRef; contentType: string | undefined } | undefined> {
    const ref: PayloadRef = { container: this.containerName, name, bytes: 0 };
    this.assertOwn(ref);
    try {
      const properties = await this.container.getBlockBlobClient(name).getProperties();
      return { ref: { ...ref, bytes: properties.contentLength ?? 0 }, contentType: properties.contentType };
    } catch (error) {
      if (error instanceof RestError && error.statusCode === 404) return undefined;
      throw error;
    }
  }

  /** Removes the payload; succeeds when it is already gone, so callers can retry freely. */
  async delete(ref: PayloadRef): Promise<void> {
    this.assertOwn(ref);
    await this.container.getBlockBlobClient(ref.name).deleteIfExists();
  }

  async exists(): Promise<boolean> {
    return this.container.exists();
  }

  /** The names of the first level of "folders" (name prefixes up to the first `/`). */
  async folders(): Promise<string[]> {
    const names: string[] = [];
    try {
      for await (const item of this.container.listBlobsByHierarchy('/')) {
        if (item.kind === 'prefix') names.push(item.name.replace(/\/$/, ''));
      }
    } catch (error) {
      if (error instanceof RestError && error.statusCode === 404) return [];
      throw error;
    }
    return names;
  }

  /** Deletes every payload under `folder/`; returns how many. */
  async deleteFolder(folder: string): Promise<number> {
    if (folder.includes('..') || folder.includes('/')) throw new RangeError('A folder is one name without "/" or ".."');
    let deleted = 0;
    for await (const blob of this.container.listBlobsFlat({ prefix: `${folder}/` })) {
      await this.container.getBlockBlobClient(blob.name).deleteIfExists();
      deleted++;
    }
    return deleted;
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
