/**
 * Summarises V8 CPU profiles (.cpuprofile, from node --cpu-prof or `npm run bench -- --profile`):
 * self time by function and source location, the hottest first, and the same by file.
 *
 *   node dist/bench/profile-summary.js <file.cpuprofile>... [--top 25]
 */
import { readFileSync } from 'node:fs';
import { relative } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { markdownTable } from './lib/report.js';

interface ProfileNode {
  readonly id: number;
  readonly callFrame: {
    readonly functionName: string;
    readonly url: string;
    readonly lineNumber: number;
    readonly columnNumber: number;
  };
  readonly children?: readonly number[];
}

interface CpuProfile {
  readonly nodes: readonly ProfileNode[];
  readonly startTime: number;
  readonly endTime: number;
  readonly samples: readonly number[];
  readonly timeDeltas: readonly number[];
}

const ROOT = fileURLToPath(new URL('../../', import.meta.url));

function location(frame: ProfileNode['callFrame']): string {
  if (!frame.url) return '(native)';
  const path = frame.url.startsWith('file://') ? relative(ROOT, fileURLToPath(frame.url)) : frame.url;
  // V8 lines are 0-based.
  return `${path}:${frame.lineNumber + 1}`;
}

/** Self time (µs) per key over the profile's samples. */
function selfTimes(profile: CpuProfile, keyOf: (node: ProfileNode) => string): Map<string, number> {
  const byId = new Map(profile.nodes.map((n) => [n.id, n]));
  const totals = new Map<string, number>();
  profile.samples.forEach((id, i) => {
    const node = byId.get(id);
    if (!node) return;
    const key = keyOf(node);
    totals.set(key, (totals.get(key) ?? 0) + (profile.timeDeltas[i] ?? 0));
  });
  return totals;
}

function main(): void {
  const { values, positionals } = parseArgs({
    allowPositionals: true,
    options: { top: { type: 'string', default: '25' } },
  });
  const top = Number(values.top);
  if (positionals.length === 0) {
    console.error('usage: node dist/bench/profile-summary.js <file.cpuprofile>... [--top 25]');
    process.exitCode = 2;
    return;
  }
  for (const file of positionals) {
    const profile = JSON.parse(readFileSync(file, 'utf8')) as CpuProfile;
    const totalUs = profile.endTime - profile.startTime;
    const byFunction = selfTimes(
      profile,
      (n) => `${n.callFrame.functionName || '(anonymous)'}\t${location(n.callFrame)}`,
    );
    const byFile = selfTimes(profile, (n) => location(n.callFrame).replace(/:\d+$/, ''));
    const rows = (totals: Map<string, number>) =>
      [...totals]
        .sort((a, b) => b[1] - a[1])
        .slice(0, top)
        .map(([key, us]) => [
          ...key.split('\t'),
          `${((us / totalUs) * 100).toFixed(1)}%`,
          (us / 1000).toFixed(0),
        ]);
    console.log(`## ${file}\n\n${(totalUs / 1e6).toFixed(1)} s profiled\n`);
    console.log(markdownTable(['function', 'location', 'self %', 'self ms'], rows(byFunction)));
    console.log();
    console.log(markdownTable(['file', 'self %', 'self ms'], rows(byFile)));
    console.log();
  }
}

main();
