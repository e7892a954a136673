/**
 * Runs `work`, or gives up after `timeoutMs`: calls `abandon` to drop the connection, and rejects
 * with an ETIMEDOUT error (a network failure to the caller). `what` names the work in the message.
 */
export async function withinDeadline<T>(timeoutMs: number, work: () => Promise<T>, abandon: () => void, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const running = work();
  // Once the deadline has won, the abandoned work's rejection has nobody to go to.
  running.catch(() => undefined);
  const deadline = new Promise<never>((_resolve, reject) => {
    timer = setTimeout(() => {
      abandon();
      reject(Object.assign(new Error(`${what} did not finish within ${String(timeoutMs)} ms.`), { code: 'ETIMEDOUT' }));
    }, timeoutMs);
  });
  try {
    return await Promise.race([running, deadline]);
  } finally {
    clearTimeout(timer);
  }
}
