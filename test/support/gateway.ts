import { type Logger, pino } from 'pino';
import { loadConfig } from '../../src/config/config.js';
import type { Gateway } from '../../src/gateway.js';
import { nativeUws } from '../../src/server/uws.js';

/**
 * Integration tests run the built gateway (dist/, built by `pretest`), as users do: worker threads
 * load dist/src/workers/worker-thread.js, which exists only there.
 */
const built: typeof import('../../src/gateway.js') = await import(
  new URL('../../dist/src/gateway.js', import.meta.url).href
);

export interface TestGateway {
  readonly gateway: Gateway;
  readonly wsUrl: string;
  readonly httpUrl: string;
  /** ADMIN_PORT's /healthz, /readyz and /metrics. */
  readonly adminUrl: string;
  getJson<T = unknown>(path: string): Promise<{ status: number; body: T }>;
  metric(name: string, labels?: string): Promise<number | undefined>;
  stop(): Promise<void>;
}

export const RELAXED_LIMITS = {
  WS_CONNECT_RATE_PER_IP: '100000',
  WS_CONNECT_BURST_PER_IP: '100000',
  WS_MAX_CONNECTIONS_PER_IP: '100000',
  REST_RATE_LIMIT_PER_SEC: '0',
} as const;

/** Starts a real gateway (real uWS, port 0) in this process with the given environment (and logger). */
export async function startTestGateway(
  env: Record<string, string> = {},
  logger: Logger = pino({ level: 'silent' }),
): Promise<TestGateway> {
  const result = loadConfig({
    HOST: '127.0.0.1',
    PORT: '0',
    ADMIN_PORT: '0',
    SIM_SEED: '42',
    LOG_LEVEL: 'silent',
    WS_WORKER_THREADS: '0',
    // Every test client connects from 127.0.0.1: per-IP limits are raised unless a test sets them.
    ...RELAXED_LIMITS,
    ...env,
  });
  if (!result.ok) throw new Error(result.errors.join('\n'));
  const gateway = await built.startGateway(result.config, logger, nativeUws());
  const httpUrl = `http://127.0.0.1:${gateway.port}`;
  return {
    gateway,
    wsUrl: `ws://127.0.0.1:${gateway.port}/`,
    httpUrl,
    adminUrl: `http://127.0.0.1:${gateway.adminPort}`,
    async getJson<T>(path: string) {
      const response = await fetch(`${httpUrl}${path}`);
      return { status: response.status, body: (await response.json()) as T };
    },
    async metric(name, labels = '') {
      const text = await (await fetch(`${httpUrl}/metrics`)).text();
      return readMetric(text, name, labels);
    },
    async stop() {
      await gateway.close();
    },
  };
}

/** Reads one sample from Prometheus text: `name{labels} value`. */
export function readMetric(text: string, name: string, labels = ''): number | undefined {
  const wanted = labels ? `${name}{${labels}}` : name;
  for (const line of text.split('\n')) {
    if (line.startsWith(`${wanted} `)) return Number(line.slice(wanted.length + 1));
  }
  return undefined;
}

/**
 * GET over a fresh TCP connection, so the kernel may route it to any worker (no keep-alive reuse),
 * with `headers` added (forwarding headers, as a proxy sends them).
 */
export async function getFresh(
  url: string,
  headers: Readonly<Record<string, string>> = {},
): Promise<{
  status: number;
  body: string;
  headers: Readonly<Record<string, string | string[] | undefined>>;
}> {
  const { request } = await import('node:http');
  return new Promise((resolve, reject) => {
    const req = request(url, { agent: false, headers: { ...headers, connection: 'close' } }, (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (chunk) => {
        body += chunk;
      });
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body, headers: res.headers }));
    });
    req.on('error', reject);
    req.end();
  });
}

/** Waits until a metric satisfies a condition (server-side state has no event a client can await). */
export async function waitForMetric(
  gateway: TestGateway,
  name: string,
  labels: string,
  condition: (value: number) => boolean,
  timeoutMs = 10_000,
): Promise<number> {
  const deadline = performance.now() + timeoutMs;
  for (;;) {
    const value = (await gateway.metric(name, labels)) ?? 0;
    if (condition(value)) return value;
    if (performance.now() > deadline)
      throw new Error(`${name}{${labels}} stayed at ${value} for ${timeoutMs} ms`);
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
}
