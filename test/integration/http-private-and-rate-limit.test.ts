import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { getFresh, readMetric, startTestGateway, type TestGateway } from '../support/gateway.js';

/**
 * Issue 16: /metrics and the probes on PORT answer direct requests only (the ingress forwards
 * the public's), and the REST market-data endpoints are limited per client IP, exact across
 * worker threads. Every request goes over a fresh connection, so with worker threads the kernel
 * spreads them over every thread.
 */

const RATE = { REST_RATE_LIMIT_PER_SEC: '1', REST_RATE_LIMIT_BURST: '5' };
const LIMITED = { message: 'Public rate limit exceeded', code: 'rate_limited' };

/** A client behind the (trusted) proxy 127.0.0.1, as the ingress forwards it. */
const via = (clientIp: string) => ({ 'x-forwarded-for': clientIp, 'x-real-ip': clientIp });

describe.each([0, 2])('WS_WORKER_THREADS=%i', (threads) => {
  let gw: TestGateway;
  beforeAll(async () => {
    gw = await startTestGateway({
      WS_WORKER_THREADS: String(threads),
      TRUSTED_PROXIES: '127.0.0.1',
      ...RATE,
    });
  });
  afterAll(() => gw.stop());

  describe('private endpoints on PORT', () => {
    it('a forwarded /metrics, /healthz or /readyz gets 403 private_endpoint, whichever proxy header it has', async () => {
      const proxied: Array<Record<string, string>> = [
        { 'x-forwarded-for': '198.51.100.7' },
        { 'x-real-ip': '198.51.100.7' },
        { forwarded: 'for=198.51.100.7;proto=https' },
        { 'x-forwarded-proto': 'https' },
        { via: '1.1 proxy' },
      ];
      let refused = 0;
      for (const path of ['/metrics', '/healthz', '/readyz'])
        for (const headers of proxied) {
          const reply = await getFresh(`${gw.httpUrl}${path}`, headers);
          expect(reply.status, `${path} ${JSON.stringify(headers)}`).toBe(403);
          expect(JSON.parse(reply.body)).toEqual({
            message: 'Forbidden',
            code: 'private_endpoint',
            reason: 'served to direct requests only, not through a proxy',
          });
          expect(reply.body).not.toContain('ws_active_connections');
          refused++;
        }
      const text = (await getFresh(`${gw.httpUrl}/metrics`)).body;
      expect(readMetric(text, 'ws_http_rejected_total', 'reason="private_endpoint"')).toBe(refused);
    });

    it('direct requests (kubelet, Prometheus, the runbook’s curl) are served, and ADMIN_PORT serves everyone', async () => {
      for (let i = 0; i < 10; i++) {
        const metrics = await getFresh(`${gw.httpUrl}/metrics`);
        expect(metrics.status).toBe(200);
        expect(metrics.body).toMatch(/^ws_active_connections \d+/m);
        expect((await getFresh(`${gw.httpUrl}/healthz`)).status).toBe(200);
        expect((await getFresh(`${gw.httpUrl}/readyz`)).status).toBe(200);
      }
      // No Ingress routes ADMIN_PORT: it does not look at forwarding headers.
      const admin = await getFresh(`${gw.adminUrl}/metrics`, via('198.51.100.7'));
      expect(admin.status).toBe(200);
      expect(admin.body).toMatch(/^ws_active_connections \d+/m);
    });

    it('the REST endpoints and the live page stay public through a proxy', async () => {
      expect((await getFresh(`${gw.httpUrl}/products`, via('198.51.100.8'))).status).toBe(200);
      expect((await getFresh(`${gw.httpUrl}/`, via('198.51.100.8'))).status).toBe(200);
    });
  });

  describe('REST rate limit per client IP (1/s, bursts of 5)', () => {
    it('a burst past the limit gets 429 with Retry-After, exact for the process; another address is unaffected; after Retry-After it is served again', async () => {
      const before = (await getFresh(`${gw.httpUrl}/metrics`)).body;
      const limitedBefore = readMetric(before, 'ws_http_rejected_total', 'reason="rate_limited"') ?? 0;
      const client = '203.0.113.10';
      const paths = [
        '/products',
        '/products/BTC-USD',
        '/products/BTC-USD/book?level=2',
        '/products/ETH-USD/ticker',
      ];
      const started = performance.now();
      // 20 at once over fresh connections: spread over the threads, they still share one bucket.
      const replies = await Promise.all(
        Array.from({ length: 20 }, (_, i) =>
          getFresh(`${gw.httpUrl}${paths[i % paths.length]}`, via(client)),
        ),
      );
      const elapsedSeconds = (performance.now() - started) / 1000;
      const served = replies.filter((r) => r.status === 200);
      const refused = replies.filter((r) => r.status === 429);
      expect(served.length + refused.length).toBe(20);
      // The burst, plus at most what 1/s refilled meanwhile; per-thread buckets would serve 5 per thread.
      expect(served.length).toBeGreaterThanOrEqual(5);
      expect(served.length, `served in ${elapsedSeconds.toFixed(2)} s`).toBeLessThanOrEqual(
        5 + Math.ceil(elapsedSeconds),
      );
      for (const reply of refused) {
        expect(JSON.parse(reply.body)).toEqual(LIMITED);
        expect(reply.headers['retry-after']).toMatch(/^[1-9]\d*$/);
      }
      const after = (await getFresh(`${gw.httpUrl}/metrics`)).body;
      expect(readMetric(after, 'ws_http_rejected_total', 'reason="rate_limited"')).toBe(
        limitedBefore + refused.length,
      );

      // Another client behind the same proxy has its own bucket.
      expect((await getFresh(`${gw.httpUrl}/products`, via('203.0.113.11'))).status).toBe(200);
      // Probes, scrapes and the live page are never counted, even from the limited address.
      for (let i = 0; i < 10; i++) {
        expect((await getFresh(`${gw.httpUrl}/metrics`)).status).toBe(200);
        expect((await getFresh(`${gw.httpUrl}/healthz`)).status).toBe(200);
        expect((await getFresh(`${gw.httpUrl}/`, via(client))).status).toBe(200);
      }

      // Spend what refilled meanwhile (1/s: a few requests at most), then wait the Retry-After of
      // the first refusal (the one wait this test needs): the address is served again.
      let refusal: Awaited<ReturnType<typeof getFresh>> | undefined;
      for (let i = 0; i < 10 && !refusal; i++) {
        const reply = await getFresh(`${gw.httpUrl}/products`, via(client));
        if (reply.status === 429) refusal = reply;
      }
      expect(refusal, 'a refusal within 10 sequential requests at 1/s').toBeDefined();
      await new Promise((resolve) => setTimeout(resolve, Number(refusal!.headers['retry-after']) * 1000));
      const recovered = await getFresh(`${gw.httpUrl}/products`, via(client));
      expect(recovered.status).toBe(200);
      expect(JSON.parse(recovered.body)).toHaveLength(4);
    });
  });
});

describe('the REST limit counts the connecting address when it is not a trusted proxy', () => {
  let gw: TestGateway;
  beforeAll(async () => {
    gw = await startTestGateway(RATE);
  });
  afterAll(() => gw.stop());

  it('a different X-Forwarded-For on every request does not buy a new bucket', async () => {
    const replies = [];
    for (let i = 0; i < 8; i++)
      replies.push(await getFresh(`${gw.httpUrl}/products`, { 'x-forwarded-for': `192.0.2.${i + 1}` }));
    expect(replies.filter((r) => r.status === 429).length).toBeGreaterThan(0);
  });

  it('REST_RATE_LIMIT_PER_SEC=0 turns the limit off', async () => {
    const open = await startTestGateway({ REST_RATE_LIMIT_PER_SEC: '0' });
    try {
      const statuses = await Promise.all(
        Array.from({ length: 40 }, async () => (await getFresh(`${open.httpUrl}/products`)).status),
      );
      expect(new Set(statuses)).toEqual(new Set([200]));
    } finally {
      await open.stop();
    }
  });
});
