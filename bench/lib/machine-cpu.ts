import { readFileSync } from 'node:fs';
import os from 'node:os';

/** Aggregate CPU time of the whole machine (Linux /proc/stat, in clock ticks). */
export interface MachineCpu {
  readonly busy: number;
  readonly total: number;
}

/** The machine's CPU counters now; undefined where /proc/stat does not exist (not Linux). */
export function readMachineCpu(): MachineCpu | undefined {
  let stat: string;
  try {
    stat = readFileSync('/proc/stat', 'utf8');
  } catch {
    return undefined;
  }
  // cpu  user nice system idle iowait irq softirq steal guest guest_nice
  const fields = stat.slice(0, stat.indexOf('\n')).trim().split(/\s+/).slice(1, 9).map(Number);
  const total = fields.reduce((sum, n) => sum + n, 0);
  const idle = (fields[3] ?? 0) + (fields[4] ?? 0);
  return { busy: total - idle, total };
}

/** Cores the whole machine kept busy between two readings (0 to the CPU count); NaN if unknown. */
export function busyCoresBetween(from: MachineCpu | undefined, to: MachineCpu | undefined): number {
  if (!from || !to || to.total <= from.total) return Number.NaN;
  return ((to.busy - from.busy) / (to.total - from.total)) * os.cpus().length;
}
