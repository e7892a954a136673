import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';

/**
 * What the poll benchmark measures with besides receive-measures.ts: this process's memory around
 * a cycle, and a bounded pool of concurrent tasks (the queue batch of one Functions instance).
 */

/** A full garbage collection, whether or not Node was started with --expose-gc. */
const collectGarbage: () => void = (() => {
  setFlagsFromString('--expose-gc');
  return runInNewContext('gc') as () => void;
})();

export interface MemoryFigures {
  /** Heap used before the cycle, after a full GC (bytes). */
  heapBefore: number;
  /** Highest heap used seen during the cycle, less heapBefore. */
  heapPeakDelta: number;
  /** Heap used after the cycle and a full GC, less heapBefore: what the cycle left behind. */
  heapKeptDelta: number;
  rssBefore: number;
  rssPeakDelta: number;
  /** RSS after the cycle and a full GC, less rssBefore (the allocator keeps pages, so this lags). */
  rssAfterDelta: number;
  samples: number;
}

/**
 * Starts watching: a full GC, then heap used and RSS sampled every `everyMs` until stop(). The
 * samples are taken on the event loop, so a busy loop takes fewer; the peak is a lower bound.
 */
export function memoryWatch(everyMs = 20): { stop(): MemoryFigures } {
  collectGarbage();
  const before = process.memoryUsage();
  let heapPeak = before.heapUsed;
  let rssPeak = before.rss;
  let samples = 0;
  const sample = () => {
    const now = process.memoryUsage();
    heapPeak = Math.max(heapPeak, now.heapUsed);
    rssPeak = Math.max(rssPeak, now.rss);
    samples++;
  };
  const timer = setInterval(sample, everyMs);
  return {
    stop() {
      clearInterval(timer);
      sample();
      collectGarbage();
      const after = process.memoryUsage();
      return {
        heapBefore: before.heapUsed,
        heapPeakDelta: heapPeak - before.heapUsed,
        heapKeptDelta: after.heapUsed - before.heapUsed,
        rssBefore: before.rss,
        rssPeakDelta: rssPeak - before.rss,
        rssAfterDelta: after.rss - before.rss,
        samples,
      };
    },
  };
}

/** Runs task(0 … count-1), `concurrency` at a time; the first failure rejects (the other workers finish their current task and stop). */
export async function pool(count: number, concurrency: number, task: (index: number) => Promise<unknown>): Promise<void> {
  let next = 0;
  let failed = false;
  const worker = async () => {
    try {
      while (next < count && !failed) await task(next++);
    } catch (error) {
      failed = true;
      throw error;
    }
  };
  await Promise.all(Array.from({ length: Math.min(concurrency, count) }, worker));
}
