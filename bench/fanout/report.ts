import { readFileSync } from 'node:fs';
import os from 'node:os';
import { fmt, markdownTable } from '../lib/report.js';
import type { PeerKind } from './client-protocol.js';
import type { ConnectionsResult, FanoutResult, HttpFigures, HttpResult, StreamFigures } from './scenarios.js';
import { PEER_NAMES } from './servers.js';

/** Sustained delivery: at least this share on schedule, and no gap. */
export const SUSTAINED_ON_SCHEDULE = 0.999;

export interface Machine {
  readonly nproc: number;
  readonly cpuModel: string;
  readonly node: string;
  readonly platform: string;
  readonly totalMemoryBytes: number;
  readonly loadAverage: readonly number[];
}

export function machine(): Machine {
  let cpuModel = os.cpus()[0]?.model ?? 'unknown';
  try {
    const match = /^model name\s*:\s*(.+)$/m.exec(readFileSync('/proc/cpuinfo', 'utf8'));
    if (match) cpuModel = match[1]!.trim();
  } catch {
    // not Linux: os.cpus() it is
  }
  return {
    nproc: os.availableParallelism(),
    cpuModel,
    node: process.version,
    platform: `${os.platform()} ${os.arch()} ${os.release()}`,
    totalMemoryBytes: os.totalmem(),
    loadAverage: os.loadavg(),
  };
}

const pct = (share: number) =>
  Number.isFinite(share) ? `${(share * 100).toFixed(share >= 0.9995 ? 2 : 1)}` : 'n/a';
const kb = (bytes: number) => (Number.isFinite(bytes) ? (bytes / 1024).toFixed(1) : 'n/a');
const ratio = (n: number) => (Number.isFinite(n) ? `${n.toFixed(2)}×` : 'n/a');

/** Whether a fan-out result counts as sustained (and so as a candidate for the peer's highest rate). */
export function sustained(stream: StreamFigures): boolean {
  return (
    stream.onScheduleShare >= SUSTAINED_ON_SCHEDULE &&
    stream.missingSequences === 0 &&
    stream.resnapshots === 0
  );
}

export function fanoutTable(results: readonly FanoutResult[]): string {
  return markdownTable(
    [
      'point',
      'server',
      'conns',
      'offered msg/s',
      'delivered msg/s',
      'on schedule %',
      'gaps (missing)',
      'p50 ms',
      'p99 ms',
      'p99.9 ms',
      'server CPU cores',
      'feed-only CPU cores',
      'CPU µs/msg',
      'delivery CPU µs/msg',
      'peak RSS MB',
      'generator ELU',
      'other CPU',
      'machine busy cores',
      'publisher late p50 ms',
    ],
    results.map((r) => {
      const s = r.stream;
      return [
        `${r.point.name} (${r.point.ratePerTopic}/s/topic)`,
        PEER_NAMES[r.kind],
        fmt.int(s.connections),
        fmt.int(s.expected / (s.windowMs / 1000)),
        fmt.int(s.deliveredPerSecond),
        pct(s.onScheduleShare),
        `${s.gaps} (${s.missingSequences})${s.resnapshots > 0 ? ` +${s.resnapshots} resnap` : ''}`,
        fmt.ms(s.latency.p50),
        fmt.ms(s.latency.p99),
        fmt.ms(s.latency.p999),
        fmt.fixed(r.serverCpuCores),
        fmt.fixed(r.feedOnlyCpuCores),
        fmt.fixed(r.cpuPerMessageUs, 3),
        fmt.fixed(r.deliveryCpuPerMessageUs, 3),
        fmt.mb(r.peakRssBytes),
        `${fmt.fixed(s.generator.maxElu)}${s.generator.saturated ? ' SATURATED' : ''}`,
        fmt.fixed(r.otherCpuCores),
        `${fmt.fixed(r.machineBusyCores)}${r.machineSaturated ? ' SATURATED' : ''}`,
        r.publisherLateness ? fmt.ms(r.publisherLateness.p50) : '-',
      ];
    }),
  );
}

export interface SustainedFigure {
  readonly kind: PeerKind;
  /** Highest delivered msg/s of a sustained point; 0 if none was. */
  readonly deliveredPerSecond: number;
  /** Highest delivered msg/s of a point with at least 99% on schedule and no gap (less noise-sensitive). */
  readonly deliveredAt99PerSecond: number;
  readonly point: string | undefined;
  /** The generator was saturated at that point (the figure may be the generator's). */
  readonly generatorSaturated: boolean;
  /**
   * The lowest offered msg/s above that point that it did not sustain: its limit lies below.
   * Undefined when it sustained the heaviest point it ran (its figure is then a lower bound).
   */
  readonly fellShortAtOffered: number | undefined;
  /** The machine was saturated at that shortfall: the generator may have been short of CPU too. */
  readonly fellShortOnSaturatedMachine: boolean;
}

/** Per server: the highest rate it sustained, and the lowest rate above it that it did not. */
export function sustainedFigures(
  results: readonly FanoutResult[],
  kinds: readonly PeerKind[],
  topicCount: number,
): SustainedFigure[] {
  // Nominal: an overloaded peer's publisher may not even schedule all of it.
  const nominalOffered = (r: FanoutResult) => r.point.connections * r.point.ratePerTopic * topicCount;
  return kinds.map((kind) => {
    const mine = results.filter((r) => r.kind === kind);
    const highest = (rs: readonly FanoutResult[]) =>
      rs.reduce<FanoutResult | undefined>(
        (a, r) => (!a || nominalOffered(r) > nominalOffered(a) ? r : a),
        undefined,
      );
    const best = highest(mine.filter((r) => sustained(r.stream)));
    const at99 = mine
      .filter((r) => r.stream.onScheduleShare >= 0.99 && r.stream.missingSequences === 0)
      .reduce((m, r) => Math.max(m, r.stream.deliveredPerSecond), 0);
    const shortfall = mine
      .filter((r) => !sustained(r.stream) && (!best || nominalOffered(r) > nominalOffered(best)))
      .reduce<FanoutResult | undefined>(
        (a, r) => (!a || nominalOffered(r) < nominalOffered(a) ? r : a),
        undefined,
      );
    return {
      kind,
      deliveredPerSecond: best?.stream.deliveredPerSecond ?? 0,
      deliveredAt99PerSecond: at99,
      point: best?.point.name,
      generatorSaturated: best?.stream.generator.saturated ?? false,
      fellShortAtOffered: shortfall ? nominalOffered(shortfall) : undefined,
      fellShortOnSaturatedMachine: shortfall?.machineSaturated ?? false,
    };
  });
}

export function sustainedTable(figures: readonly SustainedFigure[]): string {
  return markdownTable(
    [
      'server',
      `highest sustained delivery msg/s (≥ ${SUSTAINED_ON_SCHEDULE * 100}% on schedule, no gaps)`,
      'at point',
      'highest with ≥ 99% on schedule',
      'note',
    ],
    figures.map((f) => [
      PEER_NAMES[f.kind],
      f.deliveredPerSecond > 0 ? fmt.int(f.deliveredPerSecond) : 'none sustained',
      f.point ?? '-',
      f.deliveredAt99PerSecond > 0 ? fmt.int(f.deliveredAt99PerSecond) : '-',
      [
        f.deliveredPerSecond > 0 && f.fellShortAtOffered === undefined
          ? 'sustained the heaviest point it ran: a lower bound'
          : '',
        f.fellShortAtOffered !== undefined
          ? `fell short at ${fmt.int(f.fellShortAtOffered)} offered${f.fellShortOnSaturatedMachine ? ' (machine saturated there)' : ''}`
          : '',
        f.generatorSaturated ? 'generator saturated' : '',
      ]
        .filter(Boolean)
        .join('; ') || '-',
    ]),
  );
}

export function connectionsTable(results: readonly ConnectionsResult[]): string {
  return markdownTable(
    [
      'server',
      'connections held',
      'failed',
      'accepted/s (handshakes)',
      'subscribed/s',
      'RSS before MB',
      'RSS held MB',
      'RSS per connection KB',
      'generator ELU',
    ],
    results.map((r) => [
      PEER_NAMES[r.kind],
      fmt.int(r.connect.ready),
      `${r.connect.failed}${Object.keys(r.connect.errors).length > 0 ? ` ${fmt.counts(r.connect.errors)}` : ''}`,
      fmt.int(r.connect.openedPerSecond),
      fmt.int(r.connect.readyPerSecond),
      fmt.mb(r.baselineRssBytes),
      fmt.mb(r.heldRssBytes),
      kb(r.rssPerConnectionBytes),
      `${fmt.fixed(r.connect.generatorMaxElu)}${r.connect.generatorSaturated ? ' SATURATED' : ''}`,
    ]),
  );
}

/** autocannon measures latency in whole milliseconds. */
const wholeMs = (ms: number) => (ms < 1 ? '< 1' : fmt.int(ms));

const httpCells = (f: HttpFigures) => [
  fmt.int(f.requestsPerSecond),
  wholeMs(f.latencyP50Ms),
  wholeMs(f.latencyP99Ms),
  String(f.non2xx + f.errors),
];

export function httpTable(result: HttpResult): string {
  const base = result.baseline;
  return [
    markdownTable(
      [
        'endpoint',
        'alone req/s',
        'p50 ms',
        'p99 ms',
        'non-2xx+err',
        'while streaming req/s',
        'p50 ms',
        'p99 ms',
        'non-2xx+err',
        'stream p50 / p99 / p99.9 ms',
        'stream on schedule %',
        'stream gaps',
      ],
      result.rows.map((row) => [
        row.path,
        ...httpCells(row.alone),
        ...httpCells(row.withStream),
        `${fmt.ms(row.stream.latency.p50)} / ${fmt.ms(row.stream.latency.p99)} / ${fmt.ms(row.stream.latency.p999)}`,
        pct(row.stream.onScheduleShare),
        String(row.stream.missingSequences),
      ]),
    ),
    '',
    `Stream alone (same connections, no HTTP load): ${fmt.int(base.deliveredPerSecond)} msg/s, p50 / p99 / p99.9 ` +
      `${fmt.ms(base.latency.p50)} / ${fmt.ms(base.latency.p99)} / ${fmt.ms(base.latency.p999)} ms, ` +
      `${pct(base.onScheduleShare)}% on schedule, ${base.missingSequences} missing.`,
  ].join('\n');
}

export interface TargetRow {
  readonly target: string;
  readonly measured: string;
  readonly met: boolean | undefined;
  readonly note: string;
}

/** A server's runs of a point (a point may run more than once). */
const runsAt = (results: readonly FanoutResult[], point: string, kind: PeerKind) =>
  results.filter((r) => r.point.name === point && r.kind === kind);

/** Mean of a figure over a server's runs of a point; undefined if none. */
function meanOf(
  results: readonly FanoutResult[],
  point: string,
  kind: PeerKind,
  pick: (r: FanoutResult) => number | undefined,
): number | undefined {
  const values = runsAt(results, point, kind)
    .map(pick)
    .filter((v): v is number => v !== undefined && Number.isFinite(v));
  return values.length === 0 ? undefined : values.reduce((a, b) => a + b, 0) / values.length;
}

/** A run of the latency or cpu scenario: raw uWS and the gateway at one point, in alternating pairs. */
export interface PairedRun extends FanoutResult {
  readonly pair: number;
}

interface RunPair {
  readonly pair: number;
  /** The server that ran first. */
  readonly first: PeerKind;
  readonly uws: FanoutResult;
  readonly gateway: FanoutResult;
}

/** The complete pairs among `runs`, in order. */
function pairsOf(runs: readonly PairedRun[]): RunPair[] {
  const pairs: RunPair[] = [];
  for (const pair of new Set(runs.map((r) => r.pair))) {
    const uws = runs.find((r) => r.pair === pair && r.kind === 'uws');
    const gateway = runs.find((r) => r.pair === pair && r.kind === 'gateway');
    if (uws && gateway) pairs.push({ pair, first: runs.find((r) => r.pair === pair)!.kind, uws, gateway });
  }
  return pairs;
}

/** Gateway p50 − raw uWS p50, ms. */
const latencyDifference = (p: RunPair) => p.gateway.stream.latency.p50 - p.uws.stream.latency.p50;
const cpuRatio = (p: RunPair) => p.gateway.cpuPerMessageUs / p.uws.cpuPerMessageUs;

/** Mean, and standard error of the mean (undefined from fewer than two values). */
function meanAndError(values: readonly number[]): { mean: number; error: number | undefined } {
  const mean = values.reduce((a, b) => a + b, 0) / values.length;
  if (values.length < 2) return { mean, error: undefined };
  const variance = values.reduce((a, v) => a + (v - mean) ** 2, 0) / (values.length - 1);
  return { mean, error: Math.sqrt(variance / values.length) };
}

const signedMs = (ms: number) => `${ms >= 0 ? '+' : ''}${fmt.fixed(ms, 3)} ms`;

export function latencyTable(runs: readonly PairedRun[]): string {
  return markdownTable(
    [
      'pair',
      'first',
      'raw uWS p50 ms',
      'gateway p50 ms',
      'difference',
      'raw uWS p99 ms',
      'gateway p99 ms',
      "raw uWS publisher's ticks late p50 ms",
      'on schedule % (uWS / gateway)',
    ],
    pairsOf(runs).map((p) => [
      String(p.pair + 1),
      PEER_NAMES[p.first],
      fmt.ms(p.uws.stream.latency.p50),
      fmt.ms(p.gateway.stream.latency.p50),
      signedMs(latencyDifference(p)),
      fmt.ms(p.uws.stream.latency.p99),
      fmt.ms(p.gateway.stream.latency.p99),
      p.uws.publisherLateness ? fmt.fixed(p.uws.publisherLateness.p50, 3) : '-',
      `${pct(p.uws.stream.onScheduleShare)} / ${pct(p.gateway.stream.onScheduleShare)}`,
    ]),
  );
}

/** The cpu scenario's pairs: CPU per delivered message of each server and their ratio. */
export function cpuTable(runs: readonly PairedRun[]): string {
  const rows = pairsOf(runs).map(({ pair, first, uws, gateway }) => [
    String(pair + 1),
    PEER_NAMES[first],
    fmt.fixed(uws.cpuPerMessageUs, 3),
    fmt.fixed(gateway.cpuPerMessageUs, 3),
    ratio(gateway.cpuPerMessageUs / uws.cpuPerMessageUs),
    `${fmt.fixed(uws.serverCpuCores)} / ${fmt.fixed(gateway.serverCpuCores)}`,
    `${fmt.fixed(uws.feedOnlyCpuCores)} / ${fmt.fixed(gateway.feedOnlyCpuCores)}`,
    `${pct(uws.stream.onScheduleShare)} / ${pct(gateway.stream.onScheduleShare)}`,
  ]);
  return markdownTable(
    [
      'pair',
      'first',
      'raw uWS CPU µs/msg',
      'gateway CPU µs/msg',
      'ratio',
      'server CPU cores (uWS / gateway)',
      'feed-only CPU cores (uWS / gateway)',
      'on schedule % (uWS / gateway)',
    ],
    rows,
  );
}

/** The issue's targets as ratios of this run's figures (reported, never asserted). */
export function targets(
  fanout: readonly FanoutResult[],
  latencyRuns: readonly PairedRun[],
  cpuRuns: readonly PairedRun[],
  sustainedList: readonly SustainedFigure[],
  connections: readonly ConnectionsResult[],
): TargetRow[] {
  const rows: TargetRow[] = [];
  const sus = (kind: PeerKind) => sustainedList.find((f) => f.kind === kind);
  const gateway = sus('gateway');
  for (const [kind, minimum] of [
    ['uws', 0.8],
    ['ws', 5],
    ['socketio', 5],
  ] as const) {
    const peer = sus(kind);
    // Not without fan-out runs of both (e.g. --scenarios cpu).
    if (!gateway || !peer || ![kind, 'gateway'].every((k) => fanout.some((r) => r.kind === k))) continue;
    const value = gateway.deliveredPerSecond / peer.deliveredPerSecond;
    rows.push({
      target: `sustained delivery: gateway ≥ ${minimum}× ${PEER_NAMES[kind]}`,
      measured: Number.isFinite(value) ? ratio(value) : 'n/a',
      met: Number.isFinite(value) ? value >= minimum : undefined,
      note: [
        `${fmt.int(gateway.deliveredPerSecond)} vs ${fmt.int(peer.deliveredPerSecond)} msg/s`,
        ...[gateway, peer].map((f) =>
          f.fellShortAtOffered === undefined
            ? `${PEER_NAMES[f.kind]} sustained the heaviest point it ran (a lower bound)`
            : f.fellShortOnSaturatedMachine
              ? `${PEER_NAMES[f.kind]} fell short at ${fmt.int(f.fellShortAtOffered)} with the machine saturated`
              : '',
        ),
        gateway.generatorSaturated || peer.generatorSaturated ? 'generator saturated' : '',
      ]
        .filter(Boolean)
        .join('; '),
    });
  }
  // Every run at the point: the ladder's two, the latency pairs' (light) and the cpu pairs' (heavy).
  const results = [...fanout, ...latencyRuns, ...cpuRuns];
  for (const point of ['light', 'heavy']) {
    const runsOf = (kind: PeerKind) => runsAt(results, point, kind).length;
    const g = meanOf(results, point, 'gateway', (r) => r.cpuPerMessageUs);
    const u = meanOf(results, point, 'uws', (r) => r.cpuPerMessageUs);
    if (g === undefined || u === undefined) continue;
    const gDelivery = meanOf(results, point, 'gateway', (r) => r.deliveryCpuPerMessageUs) ?? Number.NaN;
    const uDelivery = meanOf(results, point, 'uws', (r) => r.deliveryCpuPerMessageUs) ?? Number.NaN;
    const value = g / u;
    const ratios = pairsOf(
      (point === 'light' ? latencyRuns : cpuRuns).filter((r) => r.point.name === point),
    ).map(cpuRatio);
    const { mean, error } = meanAndError(ratios);
    rows.push({
      target: `CPU per delivered message at the ${point} point: gateway ≤ 1.2× raw uWS`,
      measured: ratio(value),
      met: Number.isFinite(value) ? value <= 1.2 : undefined,
      note:
        `${fmt.fixed(g, 3)} vs ${fmt.fixed(u, 3)} µs/msg (means of ${runsOf('gateway')} and ${runsOf('uws')} runs); ` +
        (ratios.length > 1
          ? `the ${ratios.length} alternating pairs' ratios: mean ${ratio(mean)}` +
            (error !== undefined ? ` (standard error ${fmt.fixed(error, 2)})` : '') +
            `, from ${ratio(Math.min(...ratios))} to ${ratio(Math.max(...ratios))}; `
          : '') +
        `without the feed's own CPU (the server with no client): ${fmt.fixed(gDelivery, 3)} vs ` +
        `${fmt.fixed(uDelivery, 3)} µs/msg (${ratio(gDelivery / uDelivery)})`,
    });
  }
  const gIdle = connections.find((c) => c.kind === 'gateway');
  const uIdle = connections.find((c) => c.kind === 'uws');
  if (gIdle && uIdle) {
    const value = gIdle.rssPerConnectionBytes / uIdle.rssPerConnectionBytes;
    rows.push({
      target: 'idle RSS per connection: gateway ≤ 1.5× raw uWS',
      measured: ratio(value),
      met: Number.isFinite(value) ? value <= 1.5 : undefined,
      note: `${kb(gIdle.rssPerConnectionBytes)} vs ${kb(uIdle.rssPerConnectionBytes)} KB (${fmt.int(gIdle.connect.ready)} connections)`,
    });
  }
  const pairs = pairsOf(latencyRuns);
  if (pairs.length > 0) {
    const differences = pairs.map(latencyDifference);
    const { mean, error } = meanAndError(differences);
    rows.push({
      target: 'latency p50 at the light point: gateway within 0.2 ms of raw uWS',
      measured: signedMs(mean),
      met: Number.isFinite(mean) ? mean <= 0.2 : undefined,
      note:
        (pairs.length === 1
          ? 'one pair; '
          : `mean of ${pairs.length} alternating pairs` +
            (error !== undefined ? ` (standard error ${fmt.fixed(error, 3)} ms)` : '') +
            `, from ${signedMs(Math.min(...differences))} to ${signedMs(Math.max(...differences))}; `) +
        `gateway ${fmt.ms(meanAndError(pairs.map((p) => p.gateway.stream.latency.p50)).mean)} vs raw uWS ` +
        `${fmt.ms(meanAndError(pairs.map((p) => p.uws.stream.latency.p50)).mean)} ms. Both stamp messages with ` +
        "their tick's scheduled time, so a late timer counts as latency in both",
    });
  } else {
    const gP50 = meanOf(results, 'light', 'gateway', (r) => r.stream.latency.p50);
    const uP50 = meanOf(results, 'light', 'uws', (r) => r.stream.latency.p50);
    if (gP50 !== undefined && uP50 !== undefined) {
      const value = gP50 - uP50;
      rows.push({
        target: 'latency p50 at the light point: gateway within 0.2 ms of raw uWS',
        measured: signedMs(value),
        met: Number.isFinite(value) ? value <= 0.2 : undefined,
        note: `${fmt.ms(gP50)} vs ${fmt.ms(uP50)} ms (mean of the fan-out scenario's light runs; no latency pairs were run)`,
      });
    }
  }
  return rows;
}

export function targetsTable(rows: readonly TargetRow[]): string {
  return markdownTable(
    ['target', 'measured', 'met', 'figures'],
    rows.map((r) => [r.target, r.measured, r.met === undefined ? 'n/a' : r.met ? 'yes' : 'NO', r.note]),
  );
}

export function machineLine(m: Machine): string {
  return (
    `${m.nproc} CPUs (nproc), ${m.cpuModel}, ${fmt.mb(m.totalMemoryBytes)} MB RAM, Node.js ${m.node}, ${m.platform}; ` +
    `load average at start ${m.loadAverage.map((n) => n.toFixed(2)).join(' ')}`
  );
}
