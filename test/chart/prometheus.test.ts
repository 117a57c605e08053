import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type GatewayProcess, spawnGateway } from '../support/process.js';
import { type PrometheusProcess, pollApi, startPrometheus } from '../support/prometheus-server.js';
import { TestClient } from '../support/ws-client.js';

/**
 * A real Prometheus server scrapes a running gateway (the built program, two worker threads), and
 * the runbook's query `/api/v1/query?query=ws_active_connections` answers with its connections.
 * It scrapes ADMIN_PORT, as the chart's ServiceMonitor scrapes each pod's `admin` port, one target
 * per pod; the runbook's in-cluster `curl http://api:8080/metrics` reads the same figures on PORT.
 */

const CLIENTS = 3;

interface Target {
  health: string;
  labels: Record<string, string>;
}
interface VectorResult {
  metric: Record<string, string>;
  value: [number, string];
}

let gateway: GatewayProcess;
let prometheus: PrometheusProcess;
const clients: TestClient[] = [];

beforeAll(async () => {
  gateway = await spawnGateway({ WS_WORKER_THREADS: '2' });
  for (let i = 0; i < CLIENTS; i++) {
    const client = await TestClient.connect(`ws://127.0.0.1:${gateway.port}/`);
    client.subscribe(['heartbeat'], ['BTC-USD']);
    await client.next((m) => m.type === 'subscriptions');
    clients.push(client);
  }
  prometheus = await startPrometheus([`127.0.0.1:${gateway.adminPort}`]);
}, 60_000);

afterAll(async () => {
  for (const client of clients) client.socket.terminate();
  await prometheus?.stop();
  gateway?.child.kill('SIGTERM');
  await gateway?.exited();
});

describe('a real Prometheus scraping the gateway', () => {
  it('scrapes it successfully', async () => {
    const target = await pollApi(`${prometheus.url}/api/v1/targets`, (body) => {
      const active = (body as { data: { activeTargets: Target[] } }).data.activeTargets;
      return active.find((t) => t.health === 'up');
    });
    expect(target.labels).toMatchObject({ job: 'api', instance: `127.0.0.1:${gateway.adminPort}` });
  }, 40_000);

  it("answers the runbook's query with the gateway's open connections, over its worker threads", async () => {
    const query = `${prometheus.url}/api/v1/query?query=ws_active_connections`;
    const results = await pollApi(query, (body) => {
      const result = (body as { data: { result: VectorResult[] } }).data.result;
      return result.length > 0 ? result : undefined;
    });
    expect(results).toHaveLength(1);
    expect(results[0]!.metric).toMatchObject({ __name__: 'ws_active_connections', job: 'api' });
    expect(results[0]!.value[1]).toBe(String(CLIENTS));
    console.log(`Prometheus: ${query} -> ${JSON.stringify(results)}`);
  }, 40_000);

  it("PORT serves the same figure as ADMIN_PORT, for the runbook's curl http://api:8080/metrics", async () => {
    const text = await (await fetch(`http://127.0.0.1:${gateway.port}/metrics`)).text();
    expect(text).toMatch(new RegExp(`^ws_active_connections ${CLIENTS}$`, 'm'));
  });
});
