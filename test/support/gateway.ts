import { pino } from 'pino';
import { loadConfig } from '../../src/config/config.js';
import { type Gateway, startGateway } from '../../src/gateway.js';
import { nativeUws } from '../../src/server/uws.js';

export interface TestGateway {
  readonly gateway: Gateway;
  readonly wsUrl: string;
  readonly httpUrl: string;
  getJson<T = unknown>(path: string): Promise<{ status: number; body: T }>;
  metric(name: string, labels?: string): Promise<number | undefined>;
  stop(): Promise<void>;
}

/** Starts a real gateway (real uWS, port 0) in this process with the given environment. */
export async function startTestGateway(env: Record<string, string> = {}): Promise<TestGateway> {
  const result = loadConfig({ HOST: '127.0.0.1', PORT: '0', SIM_SEED: '42', LOG_LEVEL: 'silent', ...env });
  if (!result.ok) throw new Error(result.errors.join('\n'));
  const gateway = await startGateway(result.config, pino({ level: 'silent' }), nativeUws());
  const httpUrl = `http://127.0.0.1:${gateway.port}`;
  return {
    gateway,
    wsUrl: `ws://127.0.0.1:${gateway.port}/`,
    httpUrl,
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
