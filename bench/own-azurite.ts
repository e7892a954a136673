import { startAzuriteOnFreePorts, type RunningAzurite } from '../local/azurite.js';

/**
 * A fresh in-memory Azurite for one bench file, stopped when the file ends. Sharing one across the
 * files let a file pay for the one before: Azurite's queue garbage collection removes each consumed
 * message's extent with a LokiJS index rebuild, and after the send bench's 5,500 messages a sweep
 * held every Azurite service for 5–25 s in the middle of the receive bench's latency samples
 * (measured there: one GET of queue messages took 5.2 s, with this process's event loop never
 * delayed over 105 ms and no network error).
 */
export async function ownAzurite(): Promise<RunningAzurite> {
  return startAzuriteOnFreePorts();
}
