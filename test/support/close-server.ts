import type { Server } from 'node:http';

/** Stops a test server now: clients keep connections alive, and close() alone would wait for them. */
export function closeServer(server: Server): Promise<void> {
  return new Promise<void>((resolve, reject) => {
    server.close((error) => {
      if (error) reject(error);
      else resolve();
    });
    server.closeAllConnections();
  });
}
