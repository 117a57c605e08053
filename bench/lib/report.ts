import { mkdirSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import { fileURLToPath } from 'node:url';
import { type LatencySummary, LogLinearHistogram } from './histogram.js';
import type { ConnectionGroup, LoadReport } from './load-protocol.js';

/** bench/out in the source tree (this module runs from dist/bench/lib). */
const OUT_DIR = fileURLToPath(new URL('../../../bench/out/', import.meta.url));

/** A generator whose event loop is busier than this cannot be trusted to read as fast as the server sends. */
export const GENERATOR_SATURATED_ELU = 0.9;

/** One group (fast or stalled) summed over every load-client process. */
export interface GroupTotals {
  readonly connections: number;
  readonly messages: number;
  readonly bytes: number;
  readonly messagesPerSecond: number;
  readonly byType: Readonly<Record<string, number>>;
  readonly gaps: number;
  readonly missingSequences: number;
  readonly staleUpdates: number;
  readonly updatesBeforeSnapshot: number;
  readonly resnapshots: number;
  readonly latency: LatencySummary;
  readonly latencyByType: Readonly<Record<string, LatencySummary>>;
  /** Latency by second of the window (each client's own window). */
  readonly latencyBySecond: readonly LatencySummary[];
  readonly closes: Readonly<Record<string, number>>;
  readonly errors: Readonly<Record<string, number>>;
}

const addInto = (target: Record<string, number>, source: Readonly<Record<string, number>>) => {
  for (const [key, n] of Object.entries(source)) target[key] = (target[key] ?? 0) + n;
};

/** Sums a group over the load clients; the rate is the sum of each client's rate over its own window. */
export function totalsOf(reports: readonly LoadReport[], group: ConnectionGroup): GroupTotals {
  const latency = new LogLinearHistogram();
  const latencyByType = new Map<string, LogLinearHistogram>();
  const latencyBySecond: LogLinearHistogram[] = [];
  const byType: Record<string, number> = {};
  const closes: Record<string, number> = {};
  const errors: Record<string, number> = {};
  let connections = 0;
  let messages = 0;
  let bytes = 0;
  let gaps = 0;
  let missingSequences = 0;
  let staleUpdates = 0;
  let updatesBeforeSnapshot = 0;
  let resnapshots = 0;
  for (const report of reports) {
    const g = report.groups[group];
    connections += g.connections;
    messages += g.messages;
    bytes += g.bytes;
    gaps += g.gaps;
    missingSequences += g.missingSequences;
    staleUpdates += g.staleUpdates;
    updatesBeforeSnapshot += g.updatesBeforeSnapshot;
    resnapshots += g.resnapshots;
    addInto(byType, g.byType);
    addInto(closes, g.closes);
    addInto(errors, g.errors);
    latency.merge(g.latency);
    for (const [type, json] of Object.entries(g.latencyByType)) {
      const histogram = latencyByType.get(type) ?? new LogLinearHistogram();
      histogram.merge(json);
      latencyByType.set(type, histogram);
    }
    g.latencyBySecond.forEach((json, second) => {
      while (latencyBySecond.length <= second) latencyBySecond.push(new LogLinearHistogram());
      latencyBySecond[second]!.merge(json);
    });
  }
  // Each client's own window: a busy client may start its window late (its 'measure' waits in line).
  const messagesPerSecond = reports.reduce(
    (sum, r) => sum + r.groups[group].messages / (r.windowMs / 1000),
    0,
  );
  return {
    connections,
    messages,
    bytes,
    messagesPerSecond,
    byType,
    gaps,
    missingSequences,
    staleUpdates,
    updatesBeforeSnapshot,
    resnapshots,
    latency: latency.summary(),
    latencyByType: Object.fromEntries([...latencyByType].map(([type, h]) => [type, h.summary()])),
    latencyBySecond: latencyBySecond.map((h) => h.summary()),
    closes,
    errors,
  };
}

/** The busiest load client's event-loop utilisation, and whether it was saturated. */
export function generatorLoad(reports: readonly LoadReport[]): {
  readonly maxElu: number;
  readonly maxCpuCores: number;
  readonly saturated: boolean;
} {
  const maxElu = Math.max(...reports.map((r) => r.eventLoopUtilization));
  const maxCpuCores = Math.max(...reports.map((r) => r.cpuCores));
  return { maxElu, maxCpuCores, saturated: maxElu > GENERATOR_SATURATED_ELU };
}

// --- output --------------------------------------------------------------------------------

export function markdownTable(headers: readonly string[], rows: ReadonlyArray<readonly string[]>): string {
  const widths = headers.map((h, i) => Math.max(h.length, ...rows.map((row) => (row[i] ?? '').length)));
  const line = (cells: readonly string[]) =>
    `| ${cells.map((cell, i) => cell.padEnd(widths[i]!)).join(' | ')} |`;
  return [line(headers), `|${widths.map((w) => '-'.repeat(w + 2)).join('|')}|`, ...rows.map(line)].join('\n');
}

/** Writes bench/out/<name>-<timestamp>.json and returns its path. */
export function writeJsonResult(name: string, result: unknown): string {
  mkdirSync(OUT_DIR, { recursive: true });
  const stamp = new Date().toISOString().replace(/[:.]/g, '-');
  const path = `${OUT_DIR}${name}-${stamp}.json`;
  writeFileSync(path, `${JSON.stringify(result, null, 2)}\n`);
  return path;
}

/** What every result file records about where it ran. */
export function machineInfo() {
  return {
    node: process.version,
    platform: `${os.platform()} ${os.arch()}`,
    cpus: os.cpus().length,
    cpuModel: os.cpus()[0]?.model ?? 'unknown',
    totalMemoryBytes: os.totalmem(),
    loadAverage: os.loadavg(),
  };
}

/** Above this many cores used by other processes during a window, its figures are flagged. */
export const OTHER_CPU_WARNING_CORES = 0.2;

/** A note when other processes used the cores during a window; undefined when they did not. */
export function contentionNote(otherCpuCores: number): string | undefined {
  if (!(otherCpuCores > OTHER_CPU_WARNING_CORES)) return undefined;
  return `other processes used ${otherCpuCores.toFixed(2)} cores during the window (figures include that contention)`;
}

export const fmt = {
  int: (n: number) => (Number.isFinite(n) ? Math.round(n).toLocaleString('en-US') : 'n/a'),
  fixed: (n: number, digits = 2) => (Number.isFinite(n) ? n.toFixed(digits) : 'n/a'),
  ms: (n: number) => (Number.isFinite(n) ? (n < 10 ? n.toFixed(2) : n.toFixed(1)) : 'n/a'),
  mb: (bytes: number) => (Number.isFinite(bytes) ? (bytes / 1024 / 1024).toFixed(1) : 'n/a'),
  counts: (record: Readonly<Record<string, number>>) =>
    Object.entries(record)
      .map(([key, n]) => `${key}:${n}`)
      .join(' ') || '-',
};

export const sleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms));
