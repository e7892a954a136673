import { mkdir, writeFile } from 'node:fs/promises';

/**
 * A small comparison harness: the subject and its baseline run in alternating rounds in the same
 * process, and the figure reported is the median of the per-round ratios. Machine noise hits both
 * sides of a round alike, so the ratio is stable where absolute timings are not.
 */

export interface Comparison {
  name: string;
  baseline: string;
  subject: string;
  /** Median over rounds of subject time / baseline time per operation. */
  ratio: number;
  baselineNsPerOp: number;
  subjectNsPerOp: number;
  rounds: number;
  operationsPerRound: number;
}

const results: Comparison[] = [];

export async function compare(
  name: string,
  baseline: { label: string; run: () => unknown },
  subject: { label: string; run: () => unknown },
  options: { rounds?: number; operations?: number } = {},
): Promise<Comparison> {
  const rounds = options.rounds ?? 15;
  const operations = options.operations ?? 2000;
  const time = async (run: () => unknown) => {
    const started = process.hrtime.bigint();
    for (let i = 0; i < operations; i++) await run();
    return Number(process.hrtime.bigint() - started) / operations;
  };
  // Warm-up: let the JIT settle on both sides before anything counts.
  await time(baseline.run);
  await time(subject.run);
  const ratios: number[] = [];
  const baselineTimes: number[] = [];
  const subjectTimes: number[] = [];
  for (let round = 0; round < rounds; round++) {
    const first = round % 2 === 0;
    const a = first ? await time(baseline.run) : 0;
    const b = await time(subject.run);
    const c = first ? a : await time(baseline.run);
    baselineTimes.push(c);
    subjectTimes.push(b);
    ratios.push(b / c);
  }
  const comparison: Comparison = {
    name,
    baseline: baseline.label,
    subject: subject.label,
    ratio: median(ratios),
    baselineNsPerOp: median(baselineTimes),
    subjectNsPerOp: median(subjectTimes),
    rounds,
    operationsPerRound: operations,
  };
  results.push(comparison);
  return comparison;
}

/** Prints every comparison made so far and writes them to bench/results/<file>.json. */
export async function report(file: string): Promise<void> {
  const rows = results.map((r) => [r.name, r.subject, r.baseline, `${r.ratio.toFixed(2)}×`, `${(r.subjectNsPerOp / 1000).toFixed(2)} µs`]);
  const header = ['comparison', 'subject', 'baseline', 'ratio', 'subject per op'];
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((row) => (row[i] ?? '').length)));
  const line = (cells: string[]) => cells.map((cell, i) => cell.padEnd(widths[i] ?? 0)).join('  ');
  console.log(['', line(header), line(widths.map((w) => '-'.repeat(w))), ...rows.map(line), ''].join('\n'));
  const directory = new URL('results/', import.meta.url);
  await mkdir(directory, { recursive: true });
  await writeFile(new URL(`${file}.json`, directory), JSON.stringify({ node: process.version, results }, null, 2));
}

function median(values: number[]): number {
  const sorted = [...values].sort((x, y) => x - y);
  const middle = Math.floor(sorted.length / 2);
  return sorted.length % 2 ? (sorted[middle] ?? 0) : ((sorted[middle - 1] ?? 0) + (sorted[middle] ?? 0)) / 2;
}
