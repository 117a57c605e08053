import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { cpuLimit } from '../../../src/config/cpu-limit.js';

const roots: string[] = [];
afterEach(() => {
  for (const root of roots.splice(0)) rmSync(root, { recursive: true, force: true });
});

/** A cgroup filesystem as the kernel would show it, with only the given files. */
function cgroup(files: Record<string, string>): string {
  const root = mkdtempSync(join(tmpdir(), 'mbg-cgroup-'));
  roots.push(root);
  for (const [path, text] of Object.entries(files)) {
    mkdirSync(dirname(join(root, path)), { recursive: true });
    writeFileSync(join(root, path), `${text}\n`);
  }
  return root;
}

describe('cpuLimit', () => {
  it('takes ceil(quota / period) from cgroup v2 cpu.max', () => {
    expect(cpuLimit(cgroup({ 'cpu.max': '200000 100000' }), 64)).toEqual({
      cpus: 2,
      source: 'cgroup v2 cpu.max 200000/100000',
    });
    expect(cpuLimit(cgroup({ 'cpu.max': '150000 100000' }), 64).cpus).toBe(2);
    expect(cpuLimit(cgroup({ 'cpu.max': '50000 100000' }), 64).cpus).toBe(1);
  });

  it('uses every available CPU when cpu.max is "max"', () => {
    expect(cpuLimit(cgroup({ 'cpu.max': 'max 100000' }), 8)).toEqual({
      cpus: 8,
      source: 'availableParallelism (cgroup v2 cpu.max: no quota)',
    });
  });

  it('is capped by availableParallelism', () => {
    expect(cpuLimit(cgroup({ 'cpu.max': '800000 100000' }), 4)).toEqual({
      cpus: 4,
      source: 'availableParallelism (below the quota of v2 cpu.max 800000/100000)',
    });
  });

  it('reads the cgroup v1 CFS quota, with cpu alone or with cpuacct', () => {
    const v1 = { 'cpu/cpu.cfs_quota_us': '300000', 'cpu/cpu.cfs_period_us': '100000' };
    expect(cpuLimit(cgroup(v1), 16)).toEqual({
      cpus: 3,
      source: 'cgroup v1 cpu.cfs_quota_us/cpu.cfs_period_us 300000/100000',
    });
    const joint = { 'cpu,cpuacct/cpu.cfs_quota_us': '250000', 'cpu,cpuacct/cpu.cfs_period_us': '100000' };
    expect(cpuLimit(cgroup(joint), 16).cpus).toBe(3);
  });

  it('treats a v1 quota of -1 as no limit', () => {
    const v1 = { 'cpu/cpu.cfs_quota_us': '-1', 'cpu/cpu.cfs_period_us': '100000' };
    expect(cpuLimit(cgroup(v1), 6)).toEqual({
      cpus: 6,
      source: 'availableParallelism (cgroup v1 cpu.cfs_quota_us: no quota)',
    });
  });

  it('falls back to availableParallelism when the files are missing', () => {
    expect(cpuLimit(cgroup({}), 5)).toEqual({
      cpus: 5,
      source: 'availableParallelism (no cgroup CPU quota files)',
    });
    expect(cpuLimit(join(tmpdir(), 'mbg-no-such-cgroup-root'), 5).cpus).toBe(5);
    // Only one of the two v1 files: no quota can be computed.
    expect(cpuLimit(cgroup({ 'cpu/cpu.cfs_quota_us': '100000' }), 5).cpus).toBe(5);
  });

  it('falls back, saying so, when the files hold garbage', () => {
    expect(cpuLimit(cgroup({ 'cpu.max': 'lots of cpus' }), 3)).toEqual({
      cpus: 3,
      source: 'availableParallelism (unreadable cpu.max "lots of cpus")',
    });
    expect(cpuLimit(cgroup({ 'cpu.max': '0 100000' }), 3)).toEqual({
      cpus: 3,
      source: 'availableParallelism (unusable v2 cpu.max 0/100000)',
    });
    const v1 = { 'cpu/cpu.cfs_quota_us': '12abc', 'cpu/cpu.cfs_period_us': '100000' };
    expect(cpuLimit(cgroup(v1), 3)).toEqual({
      cpus: 3,
      source: 'availableParallelism (unreadable cpu.cfs_quota_us/cpu.cfs_period_us "12abc/100000")',
    });
  });

  it('is at least 1, even with no CPU reported', () => {
    expect(cpuLimit(cgroup({ 'cpu.max': '1000 100000' }), 0).cpus).toBe(1);
    expect(cpuLimit(cgroup({}), 0).cpus).toBe(1);
  });
});
