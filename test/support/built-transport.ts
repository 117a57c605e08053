import { type Logger, pino } from 'pino';
import { loadConfig } from '../../src/config/config.js';
import type { Transport as TransportType } from '../../src/server/transport.js';
import { RELAXED_LIMITS } from './gateway.js';

/**
 * The built transport and the parts it is wired with, loaded from dist/ as the gateway runs them
 * (uWS must be the native build the gateway checks for, not a copy transformed by vitest).
 */
const load = <T>(path: string): Promise<T> => import(new URL(`../../dist/src/${path}`, import.meta.url).href);
const { Transport } = await load<typeof import('../../src/server/transport.js')>('server/transport.js');
const { nativeUws } = await load<typeof import('../../src/server/uws.js')>('server/uws.js');
const { createMetrics } = await load<typeof import('../../src/metrics/metrics.js')>('metrics/metrics.js');
const { ConnectionAdmission } =
  await load<typeof import('../../src/limits/admission.js')>('limits/admission.js');
const { SharedCounterTable } =
  await load<typeof import('../../src/limits/shared-counters.js')>('limits/shared-counters.js');

type Market = ConstructorParameters<typeof TransportType>[1]['market'];

export interface StartedTransport {
  readonly transport: TransportType;
  readonly port: number;
  /** The transport's metrics as Prometheus text. */
  metrics(): Promise<string>;
}

/**
 * A real transport (real uWS, port 0) with this environment's limits, over a market of one product
 * (BTC-USD, empty initial messages) unless `market` says otherwise. The caller closes it.
 */
export async function startTransport(
  options: { env?: Record<string, string>; market?: Partial<Market>; logger?: Logger } = {},
): Promise<StartedTransport> {
  const result = loadConfig({ ...RELAXED_LIMITS, HOST: '127.0.0.1', PORT: '0', ...options.env });
  if (!result.ok) throw new Error(result.errors.join('\n'));
  const config = result.config;
  const metrics = createMetrics({ processMetrics: false });
  const transport = new Transport(
    {
      host: config.host,
      port: 0,
      maxPayloadBytes: config.maxPayloadBytes,
      idleTimeoutSeconds: config.idleTimeoutSeconds,
      subscribeTimeoutMs: config.subscribeTimeoutMs,
      flowControl: config.flowControl,
      limits: config.limits,
    },
    {
      uws: nativeUws(),
      market: {
        hasProduct: (id) => id === 'BTC-USD',
        requestInitial: (_channel, _productId, deliver) => deliver([]),
        http: () => ({ status: 200, body: '{}' }),
        metrics: async () => ({ status: 200, body: await metrics.registry.metrics() }),
        ...options.market,
      },
      metrics,
      logger: options.logger ?? pino({ level: 'silent' }),
      healthy: () => true,
      admission: new ConnectionAdmission(SharedCounterTable.create(1024, 1), 0, 100, 100),
      gate: { admit: async () => ({ allowed: true }), release: () => {} },
    },
  );
  return { transport, port: await transport.listen(), metrics: () => metrics.registry.metrics() };
}
