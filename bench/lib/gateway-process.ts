import { type ChildProcess, spawn } from 'node:child_process';
import { once } from 'node:events';
import { performance } from 'node:perf_hooks';
import { fileURLToPath } from 'node:url';
import { GATEWAY_NODE_OPTIONS } from '../../src/node-options.js';

/** The built gateway, run as users run it: node with the gateway's V8 options, dist/src/main.js. */
const MAIN = fileURLToPath(new URL('../../src/main.js', import.meta.url));
const OUTPUT_TAIL_CHARS = 8_192;

// --- Prometheus text -------------------------------------------------------------------------

export interface PromSample {
  readonly name: string;
  readonly labels: Readonly<Record<string, string>>;
  readonly value: number;
}

/** A parsed scrape: look samples up by name and (a subset of) labels. */
export class PromMetrics {
  constructor(readonly samples: readonly PromSample[]) {}

  /** The first sample of `name` whose labels include `labels`; undefined if there is none. */
  value(name: string, labels: Readonly<Record<string, string>> = {}): number | undefined {
    const wanted = Object.entries(labels);
    return this.samples.find((s) => s.name === name && wanted.every(([k, v]) => s.labels[k] === v))?.value;
  }

  /** The sum of every sample of `name` (all label sets); 0 if there is none. */
  sum(name: string): number {
    let total = 0;
    for (const sample of this.samples) if (sample.name === name) total += sample.value;
    return total;
  }
}

const SAMPLE_LINE = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})?\s+(\S+)(?:\s+\d+)?$/;
const LABEL = /([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"/g;

/** Parses the Prometheus text exposition format (comments skipped, timestamps ignored). */
export function parsePrometheus(text: string): PromMetrics {
  const samples: PromSample[] = [];
  for (const raw of text.split('\n')) {
    const line = raw.trim();
    if (line === '' || line.startsWith('#')) continue;
    const match = SAMPLE_LINE.exec(line);
    if (!match) continue;
    const labels: Record<string, string> = {};
    for (const [, key, value] of (match[2] ?? '').matchAll(LABEL))
      labels[key!] = value!.replace(/\\(.)/g, (_, c: string) => (c === 'n' ? '\n' : c));
    samples.push({ name: match[1]!, labels, value: Number(match[3]) });
  }
  return new PromMetrics(samples);
}

// --- the gateway process ---------------------------------------------------------------------

/** What the process-wide default metrics say about the gateway's resources at one moment. */
export interface ResourceReading {
  /** process_cpu_user_seconds_total + process_cpu_system_seconds_total (the whole process, every thread). */
  readonly cpuSeconds: number;
  /** process_resident_memory_bytes. */
  readonly rssBytes: number;
}

export function resourcesOf(metrics: PromMetrics): ResourceReading {
  return {
    cpuSeconds:
      (metrics.value('process_cpu_user_seconds_total') ?? Number.NaN) +
      (metrics.value('process_cpu_system_seconds_total') ?? Number.NaN),
    rssBytes: metrics.value('process_resident_memory_bytes') ?? Number.NaN,
  };
}

export interface ExitStatus {
  readonly code: number | null;
  readonly signal: NodeJS.Signals | null;
}

export class GatewayProcess {
  private constructor(
    private readonly child: ChildProcess,
    readonly port: number,
    private readonly output: { stdout: string; stderr: string },
    private readonly exit: Promise<ExitStatus>,
  ) {}

  /**
   * Starts dist/src/main.js with the gateway's V8 options (GATEWAY_NODE_OPTIONS) and a minimal
   * environment (PATH, HOST=127.0.0.1, PORT=0, ADMIN_PORT=0, LOG_LEVEL=info, then `env`), and resolves when it logs
   * "listening" (at info level), with the port from that line. `nodeArgs` go to node before the
   * script too (e.g. --cpu-prof, which NODE_OPTIONS does not allow).
   */
  static async start(
    env: Readonly<Record<string, string>>,
    timeoutMs = 20_000,
    nodeArgs: readonly string[] = [],
  ): Promise<GatewayProcess> {
    const child = spawn(process.execPath, [...GATEWAY_NODE_OPTIONS, ...nodeArgs, MAIN], {
      env: {
        PATH: process.env.PATH ?? '',
        HOST: '127.0.0.1',
        PORT: '0',
        ADMIN_PORT: '0',
        LOG_LEVEL: 'info',
        ...env,
      },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    const output = { stdout: '', stderr: '' };
    const keep = (key: 'stdout' | 'stderr') => (chunk: Buffer) => {
      output[key] = (output[key] + chunk.toString()).slice(-OUTPUT_TAIL_CHARS);
    };
    child.stderr!.on('data', keep('stderr'));
    const exit = once(child, 'exit').then(([code, signal]) => ({ code, signal }) as ExitStatus);
    // If the benchmark itself dies, do not leave the gateway running.
    const killOnExit = () => child.kill('SIGKILL');
    process.once('exit', killOnExit);
    void exit.then(() => process.off('exit', killOnExit));
    let pending = '';
    const port = new Promise<number>((resolve, reject) => {
      child.stdout!.on('data', (chunk: Buffer) => {
        keep('stdout')(chunk);
        pending += chunk.toString();
        const lines = pending.split('\n');
        pending = lines.pop()!;
        for (const line of lines) {
          if (!line.includes('"msg":"listening"')) continue;
          resolve((JSON.parse(line) as { port: number }).port);
        }
      });
      void exit.then(({ code, signal }) =>
        reject(new Error(`gateway exited (${signal ?? code}) before listening:\n${output.stderr}`)),
      );
      setTimeout(() => reject(new Error(`gateway not listening within ${timeoutMs} ms`)), timeoutMs).unref();
    });
    try {
      return new GatewayProcess(child, await port, output, exit);
    } catch (error) {
      child.kill('SIGKILL');
      throw error;
    }
  }

  get pid(): number {
    return this.child.pid!;
  }

  get wsUrl(): string {
    return `ws://127.0.0.1:${this.port}/`;
  }

  get httpUrl(): string {
    return `http://127.0.0.1:${this.port}`;
  }

  /** The last few KB the gateway wrote to stdout (its logs) and stderr, for error reports. */
  get outputTail(): { readonly stdout: string; readonly stderr: string } {
    return { ...this.output };
  }

  /** Whether it has exited, and how (undefined while it runs). */
  get exitStatus(): ExitStatus | undefined {
    const { exitCode, signalCode } = this.child;
    return exitCode === null && signalCode === null ? undefined : { code: exitCode, signal: signalCode };
  }

  async scrape(): Promise<PromMetrics> {
    const response = await fetch(`${this.httpUrl}/metrics`, { signal: AbortSignal.timeout(5_000) });
    if (!response.ok) throw new Error(`GET /metrics: ${response.status}`);
    return parsePrometheus(await response.text());
  }

  async resources(): Promise<ResourceReading> {
    return resourcesOf(await this.scrape());
  }

  /** SIGTERM (graceful drain); SIGKILL if it has not exited within `timeoutMs`. */
  async stop(timeoutMs = 15_000): Promise<ExitStatus> {
    if (this.child.exitCode === null && this.child.signalCode === null) this.child.kill('SIGTERM');
    const timer = setTimeout(() => this.child.kill('SIGKILL'), timeoutMs);
    try {
      return await this.exit;
    } finally {
      clearTimeout(timer);
    }
  }
}

// --- sampling metrics over time --------------------------------------------------------------

export interface Timed<T> {
  /** Milliseconds since the sampler started. */
  readonly atMs: number;
  readonly value: T;
}

/**
 * Scrapes /metrics every `intervalMs` (the next scrape starts when the last one has answered, so a
 * loaded gateway is never asked twice at once) and keeps what `pick` takes from each scrape;
 * `onSample` sees each one as it is kept (to print it live).
 */
export class MetricsSampler<T> {
  readonly series: Array<Timed<T>> = [];
  /** Scrapes that failed or timed out (a saturated gateway may answer late). */
  failures = 0;
  private readonly startedAt = performance.now();
  private running = true;
  private readonly loop: Promise<void>;

  constructor(
    private readonly gateway: GatewayProcess,
    private readonly intervalMs: number,
    private readonly pick: (metrics: PromMetrics) => T,
    private readonly onSample: (sample: Timed<T>) => void = () => {},
  ) {
    this.loop = this.run();
  }

  /** Milliseconds since the sampler started (the time base of `series`). */
  elapsedMs(): number {
    return Math.round(performance.now() - this.startedAt);
  }

  /** Stops after the scrape in flight (if any) and returns the series. */
  async stop(): Promise<Array<Timed<T>>> {
    this.running = false;
    await this.loop;
    return this.series;
  }

  private async run(): Promise<void> {
    while (this.running) {
      const started = performance.now();
      try {
        const metrics = await this.gateway.scrape();
        const sample = { atMs: Math.round(started - this.startedAt), value: this.pick(metrics) };
        this.series.push(sample);
        this.onSample(sample);
      } catch {
        this.failures++;
      }
      const wait = this.intervalMs - (performance.now() - started);
      if (wait > 0 && this.running) await new Promise((resolve) => setTimeout(resolve, wait));
    }
  }
}
