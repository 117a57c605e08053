/**
 * The measured scenarios of the peer comparison, each against one fresh server process:
 *   fan-out      C connections subscribed to every topic, the server publishing R messages/s per
 *                topic on a fixed schedule; a warm-up, then a window in which the clients count;
 *   connections  a storm of N connections opened as fast as the clients can (accepted/s), then held
 *                idle to read the server's RSS per connection;
 *   http         (the gateway) autocannon against its REST endpoints, alone and while WebSocket
 *                clients stream, with the stream's latency measured in the same windows.
 */
import os from 'node:os';
import { performance } from 'node:perf_hooks';
import autocannon from 'autocannon';
import { busyCoresBetween, readMachineCpu } from '../lib/machine-cpu.js';
import { sleep } from '../lib/report.js';
import type { PublisherStats } from '../peers/publisher.js';
import type { ClientConfig, ConnectReport, PeerKind, StreamReport } from './client-protocol.js';
import { type LatencyMs, latencyMs, mergeHistograms } from './hdr.js';
import { FanoutClient } from './load-client-handle.js';
import { processCpuSeconds, processMemory } from './proc.js';
import { type GatewayFeed, type ServerUnderTest, startServer } from './servers.js';

/** Above this event-loop utilisation a load client cannot be trusted to read as fast as the server sends. */
export const GENERATOR_SATURATED_ELU = 0.9;
/** Share of the machine's CPUs busy in a window above which a fan-out point is machine-bound. */
export const MACHINE_SATURATED_SHARE = 0.9;

export type Log = (line: string) => void;

export interface CommonSettings {
  readonly topics: readonly string[];
  readonly clientProcesses: number;
  readonly seed: number;
  readonly gatewayFeed: GatewayFeed;
  /** Source addresses for the client processes, used in turn (empty: the kernel's choice). */
  readonly localAddresses: readonly string[];
  /** Profile the server processes (V8 CPU profiles into this directory). */
  readonly cpuProfileDir?: string | undefined;
  /** Profile the load-client processes (into this directory). */
  readonly clientProfileDir?: string | undefined;
}

export interface FanoutPoint {
  readonly name: string;
  readonly connections: number;
  readonly ratePerTopic: number;
}

export interface FanoutSettings extends CommonSettings {
  /** How long the server's CPU is read with no client connected (0: not measured). */
  readonly feedOnlyMs: number;
  readonly warmupMs: number;
  readonly durationMs: number;
  readonly graceMs: number;
  readonly onScheduleMs: number;
  readonly connectConcurrency: number;
}

export interface GeneratorLoad {
  readonly maxElu: number;
  readonly cpuCores: number;
  readonly saturated: boolean;
}

export interface StreamFigures {
  readonly connections: number;
  readonly windowMs: number;
  readonly delivered: number;
  readonly deliveredPerSecond: number;
  /** Deliveries the schedule called for in the window: messages scheduled × their subscribers. */
  readonly expected: number;
  readonly onSchedule: number;
  /** onSchedule / expected. */
  readonly onScheduleShare: number;
  readonly gaps: number;
  readonly missingSequences: number;
  readonly staleUpdates: number;
  readonly resnapshots: number;
  readonly updatesBeforeSnapshot: number;
  readonly latency: LatencyMs;
  readonly generator: GeneratorLoad;
  readonly closes: Readonly<Record<string, number>>;
  readonly errors: Readonly<Record<string, number>>;
}

export interface FanoutResult {
  readonly kind: PeerKind;
  readonly point: FanoutPoint;
  readonly stream: StreamFigures;
  readonly serverCpuSeconds: number;
  readonly serverCpuCores: number;
  /** Server CPU time per delivered message, µs. */
  readonly cpuPerMessageUs: number;
  /**
   * The same server at the same rate before any client connected: what its feed alone costs (the
   * publisher, and the gateway's sequence checks and order books, or its simulator), in cores.
   */
  readonly feedOnlyCpuCores: number;
  /** (server CPU − feed-only CPU) per delivered message, µs: the cost of delivery itself. */
  readonly deliveryCpuPerMessageUs: number;
  readonly peakRssBytes: number;
  /** CPU the rest of the machine used in the window, in cores (other sessions, the OS). */
  readonly otherCpuCores: number;
  /** Cores the whole machine kept busy in the window (server, generator, this process, the rest). */
  readonly machineBusyCores: number;
  /**
   * The machine was at least MACHINE_SATURATED_SHARE busy: the server and the generator competed for
   * the last of it, so a shortfall here may be the generator's (inconclusive); a point sustained
   * regardless still counts.
   */
  readonly machineSaturated: boolean;
  /** How late the peer publisher's ticks fired (undefined for the gateway). */
  readonly publisherLateness: LatencyMs | undefined;
  readonly publisher: Omit<PublisherStats, 'lateness'> | undefined;
  readonly connect: ConnectTotals;
}

export interface ConnectTotals {
  readonly requested: number;
  readonly opened: number;
  readonly ready: number;
  readonly failed: number;
  readonly seconds: number;
  readonly openedPerSecond: number;
  readonly readyPerSecond: number;
  readonly errors: Readonly<Record<string, number>>;
  /** The busiest client's event-loop utilisation while connecting. */
  readonly generatorMaxElu: number;
  readonly generatorSaturated: boolean;
}

/** Splits `total` over `parts` as evenly as possible. */
const share = (total: number, parts: number, index: number) =>
  Math.floor(total / parts) + (index < total % parts ? 1 : 0);

const epochMs = () => performance.timeOrigin + performance.now();

function clientConfig(
  server: ServerUnderTest,
  settings: CommonSettings,
  index: number,
  subscribe: readonly string[],
): ClientConfig {
  const localAddress =
    settings.localAddresses.length > 0
      ? settings.localAddresses[index % settings.localAddresses.length]
      : undefined;
  return {
    label: `${server.kind}-client-${index}`,
    host: server.host,
    port: server.port,
    path: server.path,
    socketIo: server.socketIo,
    expectSnapshot: server.expectSnapshot,
    topics: settings.topics,
    subscribe,
    localAddress,
  };
}

function sumRecords(records: ReadonlyArray<Readonly<Record<string, number>>>): Record<string, number> {
  const out: Record<string, number> = {};
  for (const record of records) for (const [k, n] of Object.entries(record)) out[k] = (out[k] ?? 0) + n;
  return out;
}

/** Opens connections on every client at the same instant; totals of the storm. */
async function connectAll(
  clients: readonly FanoutClient[],
  total: number,
  concurrency: number,
  readyTimeoutMs: number,
): Promise<ConnectTotals> {
  const startAtEpochMs = epochMs() + 200;
  const reports: ConnectReport[] = await Promise.all(
    clients.map((client, i) =>
      client.connect({ count: share(total, clients.length, i), concurrency, startAtEpochMs, readyTimeoutMs }),
    ),
  );
  const start = Math.min(...reports.map((r) => r.startedAtEpochMs));
  const lastOpened = Math.max(...reports.map((r) => r.lastOpenedAtEpochMs));
  const lastReady = Math.max(...reports.map((r) => r.lastReadyAtEpochMs));
  const opened = reports.reduce((s, r) => s + r.opened, 0);
  const ready = reports.reduce((s, r) => s + r.ready, 0);
  return {
    requested: total,
    opened,
    ready,
    failed: reports.reduce((s, r) => s + r.failed, 0),
    seconds: (lastReady - start) / 1000,
    openedPerSecond: opened / ((lastOpened - start) / 1000),
    readyPerSecond: ready / ((lastReady - start) / 1000),
    errors: sumRecords(reports.map((r) => r.errors)),
    generatorMaxElu: Math.max(...reports.map((r) => r.eventLoopUtilization)),
    generatorSaturated: reports.some((r) => r.eventLoopUtilization > GENERATOR_SATURATED_ELU),
  };
}

/**
 * What the clients' reports add up to. Expected deliveries per topic: the sequences scheduled in the
 * window (the publisher's own count for the peers; otherwise the highest sequence the clients saw
 * scheduled before the window's end minus the one before its start) times the topic's subscribers.
 */
export function streamFigures(
  reports: readonly StreamReport[],
  topics: readonly string[],
  publisher?: PublisherStats,
): StreamFigures {
  let expected = 0;
  topics.forEach((topic, t) => {
    const subscribers = reports.reduce((s, r) => s + r.subscribers[t]!, 0);
    if (subscribers === 0) return;
    const scheduled =
      publisher?.scheduledInWindow[topic] ??
      Math.max(
        0,
        Math.max(...reports.map((r) => r.sequenceAtTo[t]!)) -
          Math.max(...reports.map((r) => r.sequenceAtFrom[t]!)),
      );
    expected += scheduled * subscribers;
  });
  const windowMs = Math.max(...reports.map((r) => r.windowMs));
  const delivered = reports.reduce((s, r) => s + r.delivered, 0);
  const onSchedule = reports.reduce((s, r) => s + r.onSchedule, 0);
  const maxElu = Math.max(...reports.map((r) => r.eventLoopUtilization));
  const sum = (pick: (r: StreamReport) => number) => reports.reduce((s, r) => s + pick(r), 0);
  return {
    connections: sum((r) => r.connections),
    windowMs,
    delivered,
    deliveredPerSecond: delivered / (windowMs / 1000),
    expected,
    onSchedule,
    onScheduleShare: expected > 0 ? onSchedule / expected : Number.NaN,
    gaps: sum((r) => r.gaps),
    missingSequences: sum((r) => r.missingSequences),
    staleUpdates: sum((r) => r.staleUpdates),
    resnapshots: sum((r) => r.resnapshots),
    updatesBeforeSnapshot: sum((r) => r.updatesBeforeSnapshot),
    latency: latencyMs(mergeHistograms(reports.map((r) => r.latency))),
    generator: {
      maxElu,
      cpuCores: sum((r) => r.cpuCores),
      saturated: maxElu > GENERATOR_SATURATED_ELU,
    },
    closes: sumRecords(reports.map((r) => r.closes)),
    errors: sumRecords(reports.map((r) => r.errors)),
  };
}

/** Starts `count` client processes for `server`; killed by the caller. */
function startClients(
  server: ServerUnderTest,
  settings: CommonSettings,
  subscribe: (index: number) => readonly string[],
): FanoutClient[] {
  return Array.from({ length: settings.clientProcesses }, (_, i) =>
    FanoutClient.start(clientConfig(server, settings, i, subscribe(i)), settings.clientProfileDir),
  );
}

/** A window announced ahead of time; CPU of the server, the clients' reports and the machine's load over it. */
async function measureWindow(
  server: ServerUnderTest,
  clients: readonly FanoutClient[],
  durationMs: number,
  graceMs: number,
  onScheduleMs: number,
  during?: (fromEpochMs: number, toEpochMs: number) => Promise<void>,
) {
  const fromEpochMs = epochMs() + 300;
  const toEpochMs = fromEpochMs + durationMs;
  const reports = Promise.all(
    clients.map((c) => c.measure({ fromEpochMs, toEpochMs, graceMs, onScheduleMs })),
  );
  reports.catch(() => {}); // awaited below
  await sleep(fromEpochMs - epochMs());
  const cpuBefore = processCpuSeconds(server.pid);
  const machineBefore = readMachineCpu();
  const ownBefore = process.cpuUsage();
  const startedAt = performance.now();
  await Promise.all([sleep(toEpochMs - epochMs()), during?.(fromEpochMs, toEpochMs)]);
  const serverCpuSeconds = processCpuSeconds(server.pid) - cpuBefore;
  const elapsedMs = performance.now() - startedAt;
  const machineCores = busyCoresBetween(machineBefore, readMachineCpu());
  const own = process.cpuUsage(ownBefore);
  const clientReports = await reports;
  const clientCores = clientReports.reduce((s, r) => s + r.cpuCores, 0);
  const otherCpuCores =
    machineCores -
    serverCpuSeconds / (elapsedMs / 1000) -
    clientCores -
    (own.user + own.system) / 1000 / elapsedMs;
  return {
    reports: clientReports,
    serverCpuSeconds,
    elapsedMs,
    otherCpuCores,
    machineBusyCores: machineCores,
    fromEpochMs,
    toEpochMs,
  };
}

export async function runFanout(
  kind: PeerKind,
  point: FanoutPoint,
  settings: FanoutSettings,
  log: Log,
): Promise<FanoutResult> {
  const server = await startServer(kind, {
    topics: settings.topics,
    ratePerTopic: point.ratePerTopic,
    seed: settings.seed,
    gatewayFeed: settings.gatewayFeed,
    cpuProfileDir: settings.cpuProfileDir,
  });
  const clients: FanoutClient[] = [];
  try {
    let feedOnlyCpuCores = Number.NaN;
    if (settings.feedOnlyMs > 0) {
      await sleep(Math.min(1000, settings.feedOnlyMs / 2));
      const before = processCpuSeconds(server.pid);
      const startedAt = performance.now();
      await sleep(settings.feedOnlyMs);
      feedOnlyCpuCores = (processCpuSeconds(server.pid) - before) / ((performance.now() - startedAt) / 1000);
    }
    clients.push(...startClients(server, settings, () => settings.topics));
    // An overloaded server may take minutes to accept everyone: that point is lost anyway.
    const connect = await connectAll(clients, point.connections, settings.connectConcurrency, 20_000);
    if (connect.ready < connect.requested)
      log(`  ${connect.requested - connect.ready} connections not ready: ${JSON.stringify(connect.errors)}`);
    await sleep(settings.warmupMs);
    const window = await measureWindow(
      server,
      clients,
      settings.durationMs,
      settings.graceMs,
      settings.onScheduleMs,
    );
    // An overloaded peer may not answer in time: the clients' sequences then give the expected count.
    const publisher = await server
      .publisherStats(window.fromEpochMs, window.toEpochMs)
      .catch((error: unknown) => {
        log(
          `  no publisher figures (${(error as Error).message}); expected deliveries from the clients' sequences`,
        );
        return undefined;
      });
    const stream = streamFigures(window.reports, settings.topics, publisher);
    const { peakRssBytes } = processMemory(server.pid);
    const serverCpuCores = window.serverCpuSeconds / (window.elapsedMs / 1000);
    let publisherLateness: LatencyMs | undefined;
    let publisherCounts: Omit<PublisherStats, 'lateness'> | undefined;
    if (publisher) {
      const { lateness, ...counts } = publisher;
      publisherLateness = latencyMs(mergeHistograms([lateness]));
      publisherCounts = counts;
    }
    return {
      kind,
      point,
      stream,
      serverCpuSeconds: window.serverCpuSeconds,
      serverCpuCores,
      // The server's CPU rate over the clients' delivered rate (the two windows coincide).
      cpuPerMessageUs: (serverCpuCores / stream.deliveredPerSecond) * 1e6,
      feedOnlyCpuCores,
      deliveryCpuPerMessageUs: ((serverCpuCores - feedOnlyCpuCores) / stream.deliveredPerSecond) * 1e6,
      peakRssBytes,
      otherCpuCores: window.otherCpuCores,
      machineBusyCores: window.machineBusyCores,
      machineSaturated: window.machineBusyCores >= MACHINE_SATURATED_SHARE * os.cpus().length,
      publisherLateness,
      publisher: publisherCounts,
      connect,
    };
  } finally {
    await Promise.all(clients.map((c) => c.stop()));
    await server.stop();
  }
}

export interface ConnectionsSettings extends CommonSettings {
  readonly connections: number;
  readonly concurrency: number;
  readonly settleMs: number;
}

export interface ConnectionsResult {
  readonly kind: PeerKind;
  readonly connect: ConnectTotals;
  readonly baselineRssBytes: number;
  readonly heldRssBytes: number;
  /** (RSS with the connections held − RSS before) / connections held. */
  readonly rssPerConnectionBytes: number;
  readonly peakRssBytes: number;
}

/**
 * The connection storm and the idle point: a server with nothing to publish, every client opening
 * its share of connections at the same instant, `concurrency` at a time each; then the connections
 * are held (each subscribed to one topic) and the server's RSS is read once it has settled.
 */
export async function runConnections(
  kind: PeerKind,
  settings: ConnectionsSettings,
): Promise<ConnectionsResult> {
  const server = await startServer(kind, {
    topics: settings.topics,
    ratePerTopic: 0,
    seed: settings.seed,
    gatewayFeed: settings.gatewayFeed,
    cpuProfileDir: settings.cpuProfileDir,
  });
  const clients: FanoutClient[] = [];
  try {
    await sleep(settings.settleMs / 2);
    const baselineRssBytes = processMemory(server.pid).rssBytes;
    clients.push(...startClients(server, settings, (i) => [settings.topics[i % settings.topics.length]!]));
    const connect = await connectAll(clients, settings.connections, settings.concurrency, 120_000);
    await sleep(settings.settleMs);
    const { rssBytes: heldRssBytes, peakRssBytes } = processMemory(server.pid);
    return {
      kind,
      connect,
      baselineRssBytes,
      heldRssBytes,
      rssPerConnectionBytes: (heldRssBytes - baselineRssBytes) / connect.ready,
      peakRssBytes,
    };
  } finally {
    await Promise.all(clients.map((c) => c.stop()));
    await server.stop();
  }
}

export const HTTP_PATHS = (product: string) => ['/products', `/products/${product}/book?level=2`, '/metrics'];

export interface HttpFigures {
  readonly requestsPerSecond: number;
  readonly latencyP50Ms: number;
  readonly latencyP99Ms: number;
  readonly non2xx: number;
  readonly errors: number;
}

export interface HttpRow {
  readonly path: string;
  readonly alone: HttpFigures;
  readonly withStream: HttpFigures;
  /** The WebSocket stream in the same window as withStream. */
  readonly stream: StreamFigures;
}

export interface HttpResult {
  readonly connections: number;
  readonly ratePerTopic: number;
  /** The stream with no HTTP load, for comparison. */
  readonly baseline: StreamFigures;
  readonly rows: readonly HttpRow[];
}

export interface HttpSettings extends FanoutSettings {
  readonly streamConnections: number;
  readonly ratePerTopic: number;
  readonly httpConnections: number;
}

async function cannon(url: string, connections: number, durationMs: number): Promise<HttpFigures> {
  const result = await autocannon({ url, connections, duration: durationMs / 1000, pipelining: 1 });
  return {
    requestsPerSecond: result.requests.total / Math.max(result.duration, durationMs / 1000),
    latencyP50Ms: result.latency.p50,
    latencyP99Ms: result.latency.p99,
    non2xx: result.non2xx,
    errors: result.errors,
  };
}

/** The gateway's REST side under autocannon, alone and while WebSocket clients stream. */
export async function runHttp(settings: HttpSettings, log: Log): Promise<HttpResult> {
  const server = await startServer('gateway', {
    topics: settings.topics,
    ratePerTopic: settings.ratePerTopic,
    seed: settings.seed,
    gatewayFeed: settings.gatewayFeed,
    cpuProfileDir: settings.cpuProfileDir,
  });
  const clients: FanoutClient[] = [];
  try {
    const base = server.httpUrl!;
    const paths = HTTP_PATHS(settings.topics[0]!);
    const alone: HttpFigures[] = [];
    for (const path of paths) {
      log(`  autocannon ${path} alone`);
      alone.push(await cannon(`${base}${path}`, settings.httpConnections, settings.durationMs));
    }
    clients.push(...startClients(server, settings, () => settings.topics));
    const connect = await connectAll(
      clients,
      settings.streamConnections,
      settings.connectConcurrency,
      60_000,
    );
    if (connect.ready < connect.requested)
      log(`  ${connect.requested - connect.ready} connections not ready`);
    await sleep(settings.warmupMs);
    log('  stream alone');
    const baselineWindow = await measureWindow(
      server,
      clients,
      settings.durationMs,
      settings.graceMs,
      settings.onScheduleMs,
    );
    const rows: HttpRow[] = [];
    for (const [i, path] of paths.entries()) {
      log(`  autocannon ${path} while streaming`);
      let withStream: HttpFigures | undefined;
      const window = await measureWindow(
        server,
        clients,
        settings.durationMs,
        settings.graceMs,
        settings.onScheduleMs,
        async (_, toEpochMs) => {
          withStream = await cannon(`${base}${path}`, settings.httpConnections, toEpochMs - epochMs());
        },
      );
      rows.push({
        path,
        alone: alone[i]!,
        withStream: withStream!,
        stream: streamFigures(window.reports, settings.topics),
      });
    }
    return {
      connections: settings.streamConnections,
      ratePerTopic: settings.ratePerTopic,
      baseline: streamFigures(baselineWindow.reports, settings.topics),
      rows,
    };
  } finally {
    await Promise.all(clients.map((c) => c.stop()));
    await server.stop();
  }
}
