import { readFileSync } from 'node:fs';
import { join } from 'node:path';

/** How many CPUs the process may keep busy, and where that figure came from (for the startup log). */
export interface CpuCount {
  readonly cpus: number;
  readonly source: string;
}

type Quota =
  | { readonly kind: 'quota'; readonly file: string; readonly quota: number; readonly period: number }
  | { readonly kind: 'none'; readonly why: string };

/**
 * The CPU limit of the container the process runs in: a pod limited to 2 CPUs on a 64-core node
 * sees 64 cores in availableParallelism(), but the kernel's CFS quota lets it use only 2, so threads
 * beyond that only add memory and contention. The figure is ceil(quota / period) from cgroup v2
 * `cpu.max` or, on v1, `cpu.cfs_quota_us` / `cpu.cfs_period_us`, capped by `available`, at least 1.
 * `cgroupRoot` is where the cgroup filesystem is mounted (a parameter so tests can write the files).
 */
export function cpuLimit(cgroupRoot: string, available: number): CpuCount {
  const cap = Math.max(1, available);
  const quota = readQuota(cgroupRoot);
  if (quota.kind === 'none') return { cpus: cap, source: `availableParallelism (${quota.why})` };
  const wanted = Math.max(1, Math.ceil(quota.quota / quota.period));
  const limit = `${quota.file} ${quota.quota}/${quota.period}`;
  return wanted > cap
    ? { cpus: cap, source: `availableParallelism (below the quota of ${limit})` }
    : { cpus: wanted, source: `cgroup ${limit}` };
}

function readQuota(root: string): Quota {
  const v2 = readText(join(root, 'cpu.max'));
  if (v2 !== undefined) {
    const match = /^(max|\d+) (\d+)$/.exec(v2);
    if (!match) return { kind: 'none', why: `unreadable cpu.max ${JSON.stringify(v2.slice(0, 40))}` };
    if (match[1] === 'max') return { kind: 'none', why: 'cgroup v2 cpu.max: no quota' };
    return quotaOf('v2 cpu.max', Number(match[1]), Number(match[2]));
  }
  // cgroup v1 mounts the cpu controller alone or together with cpuacct, depending on the distribution.
  for (const controller of ['cpu', 'cpu,cpuacct']) {
    const quota = readText(join(root, controller, 'cpu.cfs_quota_us'));
    const period = readText(join(root, controller, 'cpu.cfs_period_us'));
    if (quota === undefined || period === undefined) continue;
    if (quota === '-1') return { kind: 'none', why: 'cgroup v1 cpu.cfs_quota_us: no quota' };
    if (!/^\d+$/.test(quota) || !/^\d+$/.test(period))
      return {
        kind: 'none',
        why: `unreadable cpu.cfs_quota_us/cpu.cfs_period_us ${JSON.stringify(`${quota}/${period}`.slice(0, 40))}`,
      };
    return quotaOf('v1 cpu.cfs_quota_us/cpu.cfs_period_us', Number(quota), Number(period));
  }
  return { kind: 'none', why: 'no cgroup CPU quota files' };
}

function quotaOf(file: string, quota: number, period: number): Quota {
  if (quota <= 0 || period <= 0) return { kind: 'none', why: `unusable ${file} ${quota}/${period}` };
  return { kind: 'quota', file, quota, period };
}

function readText(path: string): string | undefined {
  try {
    return readFileSync(path, 'utf8').trim();
  } catch {
    // Missing (another cgroup version, or not Linux) or unreadable: the caller falls back.
    return undefined;
  }
}
