import { afterEach, describe, expect, it } from 'vitest';
import { BookReplica } from '../support/book-replica.js';
import { getFresh, readMetric, startTestGateway, type TestGateway } from '../support/gateway.js';
import { type Message, TestClient } from '../support/ws-client.js';

let gw: TestGateway | undefined;
afterEach(async () => {
  await gw?.stop();
  gw = undefined;
});

async function connectSpread(gateway: TestGateway, threads: number, count: number): Promise<TestClient[]> {
  const clients = await Promise.all(Array.from({ length: count }, () => TestClient.connect(gateway.wsUrl)));
  // Every worker must serve some of them (SO_REUSEPORT hashes each connection to one worker).
  const text = (await getFresh(`${gateway.httpUrl}/metrics`)).body;
  for (let worker = 0; worker < threads; worker++) {
    expect(
      readMetric(text, 'ws_worker_connections', `worker="${worker}"`),
      `worker ${worker}`,
    ).toBeGreaterThan(0);
  }
  return clients;
}

/** Level2 messages after the snapshot must have consecutive sequences: nothing missed or doubled. */
function expectConsecutive(messages: Message[]): number {
  const sequences = messages
    .filter((m) => m.type === 'snapshot' || m.type === 'l2update')
    .map((m) => m.sequence as number);
  for (let i = 1; i < sequences.length; i++) expect(sequences[i]).toBe(sequences[i - 1]! + 1);
  return sequences.length;
}

/**
 * After a worker fault: splits the clients into the faulty worker's (their sockets close) and the
 * others, which show it by receiving an l2update newer than the hub's sequence read now — one the
 * faulty worker, stopped before this call, cannot have sent. (An update already buffered, or one
 * in flight from the faulty worker, proves nothing: its socket may close a moment later.)
 */
async function splitByFault(
  gateway: TestGateway,
  clients: readonly TestClient[],
  productId: string,
  waitMs: number,
): Promise<{ closedOnes: TestClient[]; survivors: TestClient[] }> {
  const { sequence: after } = (await gateway.getJson<{ sequence: number }>(`/products/${productId}/book`))
    .body;
  const closedOnes: TestClient[] = [];
  const survivors: TestClient[] = [];
  await Promise.all(
    clients.map(async (c) => {
      if (c.socket.readyState === c.socket.OPEN) {
        try {
          await c.next((m) => m.type === 'l2update' && (m.sequence as number) > after, waitMs);
          survivors.push(c);
          return;
        } catch (error) {
          // Rejected because the socket closed while waiting, or a timeout on an open one (a failure).
          if (c.socket.readyState === c.socket.OPEN) throw error;
        }
      }
      await c.closed;
      closedOnes.push(c);
    }),
  );
  return { closedOnes, survivors };
}

describe.each([2, 3])('WS_WORKER_THREADS=%i', (threads) => {
  it('every client on every worker gets the complete, ordered stream and an exact book', async () => {
    gw = await startTestGateway({ WS_WORKER_THREADS: String(threads), SIM_EVENTS_PER_SEC: '400' });
    const clients = await connectSpread(gw, threads, 24);
    const replicas = clients.map(() => new BookReplica());
    for (const client of clients) client.subscribe(['level2', 'matches'], ['BTC-USD']);
    await Promise.all(clients.map(async (c, i) => replicas[i]!.apply(await c.nextOfType('snapshot'))));
    // Let the stream run, then compare each client's book with the REST book at the same sequence.
    const rest = await gw.getJson<{ bids: [string, string][]; asks: [string, string][]; sequence: number }>(
      '/products/BTC-USD/book?level=2',
    );
    await Promise.all(
      clients.map((c, i) =>
        c.next((m) => {
          replicas[i]!.apply(m);
          return replicas[i]!.sequence >= rest.body.sequence + 200;
        }),
      ),
    );
    for (const [i, client] of clients.entries()) {
      expect(expectConsecutive(client.messages)).toBeGreaterThan(200);
      expect(replicas[i]!.history.get(rest.body.sequence)).toEqual({
        bids: rest.body.bids.map(([p, s]) => [p, s]),
        asks: rest.body.asks.map(([p, s]) => [p, s]),
      });
    }
    // The same sequence carries the same bytes on every worker: one serialisation, fanned out.
    const bySequence = new Map<number, string>();
    for (const client of clients) {
      for (const m of client.messages.filter((x) => x.type === 'l2update')) {
        const json = JSON.stringify(m);
        expect(bySequence.get(m.sequence as number) ?? json).toBe(json);
        bySequence.set(m.sequence as number, json);
      }
    }
    await Promise.all(clients.map((c) => c.close()));
  });

  it('/metrics shows process totals whichever worker answers; HTTP answers the same from every worker', async () => {
    gw = await startTestGateway({ WS_WORKER_THREADS: String(threads) });
    const clients = await connectSpread(gw, threads, 21);
    for (let scrape = 0; scrape < 20; scrape++) {
      const text = (await getFresh(`${gw.httpUrl}/metrics`)).body;
      expect(readMetric(text, 'ws_active_connections')).toBe(21);
      expect(readMetric(text, 'ws_connections_total')).toBe(21);
      // Process metrics come from the main thread only: counted once, not once per thread.
      expect(text.match(/^process_cpu_user_seconds_total /gm)).toHaveLength(1);
      expect(text).toMatch(/^ws_message_queue_size \d+/m);
    }
    // ADMIN_PORT (main thread) serves the same process totals.
    const admin = (await getFresh(`${gw.adminUrl}/metrics`)).body;
    expect(readMetric(admin, 'ws_active_connections')).toBe(21);
    expect(admin.match(/^process_cpu_user_seconds_total /gm)).toHaveLength(1);
    expect(JSON.parse((await getFresh(`${gw.adminUrl}/healthz`)).body)).toEqual({ status: 'ok' });
    const products = new Set<string>();
    for (let i = 0; i < 20; i++) products.add((await getFresh(`${gw.httpUrl}/products`)).body);
    expect(products.size).toBe(1);
    await Promise.all(clients.slice(0, 10).map((c) => c.close()));
    const after = (await getFresh(`${gw.httpUrl}/metrics`)).body;
    expect(readMetric(after, 'ws_active_connections')).toBe(11);
    await Promise.all(clients.slice(10).map((c) => c.close()));
  });
});

describe('topics nobody is on', () => {
  const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

  /**
   * Subscribes to BTC-USD level2 and follows the l2updates after the snapshot for `ms` (longer than
   * a worker's sweep of its topics), each the next sequence.
   */
  async function follow(client: TestClient, ms: number): Promise<void> {
    client.subscribe(['level2'], ['BTC-USD']);
    let sequence = (await client.nextOfType('snapshot')).sequence as number;
    const until = performance.now() + ms;
    while (performance.now() < until) {
      const update = await client.nextOfType('l2update', 1_000);
      expect(update.sequence).toBe(++sequence);
    }
  }

  /** Unsubscribes, and skips whatever the old subscription still delivered before the reply. */
  async function leave(client: TestClient): Promise<void> {
    client.send({ type: 'unsubscribe', product_ids: ['BTC-USD'], channels: ['level2'] });
    await client.next((m) => m.type === 'subscriptions');
  }

  it('come back complete and ordered for every new subscriber, however subscriptions come and go', async () => {
    const threads = 2;
    gw = await startTestGateway({ WS_WORKER_THREADS: String(threads), SIM_EVENTS_PER_SEC: '400' });
    const clients = await connectSpread(gw, threads, 8);
    await Promise.all(clients.map((c) => follow(c, 100)));
    // Everyone leaves: within a second the workers give the topic back and the hub stops building it.
    await Promise.all(clients.map((c) => leave(c)));
    await sleep(1_500);
    // Then subscriptions come and go at random, some while a worker is giving the topic back.
    await Promise.all(
      clients.map(async (client, i) => {
        for (let round = 0; round < 3; round++) {
          await sleep(((i * 7 + round * 13) % 10) * 120);
          await follow(client, 1_300);
          await leave(client);
        }
      }),
    );
    await Promise.all(clients.map((c) => c.close()));
  });
});

describe('a worker that dies', () => {
  it('is replaced within a second; its clients are disconnected; the others are undisturbed', async () => {
    const threads = 3;
    gw = await startTestGateway({ WS_WORKER_THREADS: String(threads), SIM_EVENTS_PER_SEC: '300' });
    const clients = await connectSpread(gw, threads, 30);
    for (const client of clients) client.subscribe(['level2'], ['ETH-USD']);
    await Promise.all(clients.map((c) => c.nextOfType('snapshot')));

    // Scrapes racing the worker's death answer with whatever threads are alive (the aggregation
    // never waits on the dying one); only a scrape the kernel routed to the dying worker itself is reset.
    // Settled from the start: a scrape reset before the fault's promise resolves is not unhandled.
    const scrapes = Promise.allSettled(Array.from({ length: 10 }, () => getFresh(`${gw!.httpUrl}/metrics`)));
    const restartMs = await gw.gateway.injectWorkerFault(0);
    const settled = await scrapes;
    const answered = settled.flatMap((s) => (s.status === 'fulfilled' ? [s.value] : []));
    expect(answered.length).toBeGreaterThan(0);
    for (const scrape of answered) expect(scrape.status).toBe(200);
    for (const s of settled)
      if (s.status === 'rejected') expect(String(s.reason)).toMatch(/ECONNRESET|socket hang up/);
    expect(restartMs).toBeLessThan(1_000);
    // The dead worker's clients see their sockets closed; wait for that event on each of them.
    const { closedOnes, survivors } = await splitByFault(gw, clients, 'ETH-USD', 3_000);
    expect(closedOnes.length).toBeGreaterThan(0);
    expect(survivors.length + closedOnes.length).toBe(30);
    // Survivors keep receiving: consume another stretch of the stream from each open client.
    await Promise.all(survivors.map((c) => c.next((m) => m.type === 'l2update')));
    for (const c of survivors) expectConsecutive(c.messages);

    const text = (await getFresh(`${gw.httpUrl}/metrics`)).body;
    expect(readMetric(text, 'ws_worker_restarts_total', 'reason="died"')).toBe(1);
    // Reconnecting clients are served again, including by the replacement worker.
    const again = await connectSpread(gw, threads, 30);
    expect(readMetric((await getFresh(`${gw.httpUrl}/metrics`)).body, 'ws_active_connections')).toBe(
      survivors.length + 30,
    );
    await Promise.all([...again, ...survivors].map((c) => c.close()));
  });
});

describe('a worker whose event loop is stuck', () => {
  it('is closed through the inspector and replaced; its clients are disconnected; the others are undisturbed', async () => {
    const threads = 3;
    gw = await startTestGateway({
      WS_WORKER_THREADS: String(threads),
      WS_WORKER_STALL_MS: '500',
      SIM_EVENTS_PER_SEC: '300',
    });
    const clients = await connectSpread(gw, threads, 30);
    for (const client of clients) client.subscribe(['level2'], ['ETH-USD']);
    await Promise.all(clients.map((c) => c.nextOfType('snapshot')));

    const restartMs = await gw.gateway.injectWorkerFault(0, 'hang');
    expect(restartMs).toBeLessThan(1_000);
    const { closedOnes, survivors } = await splitByFault(gw, clients, 'ETH-USD', 5_000);
    expect(closedOnes.length).toBeGreaterThan(0);
    expect(survivors.length + closedOnes.length).toBe(30);
    await Promise.all(survivors.map((c) => c.next((m) => m.type === 'l2update')));
    for (const c of survivors) expectConsecutive(c.messages);

    const text = (await getFresh(`${gw.httpUrl}/metrics`)).body;
    expect(readMetric(text, 'ws_worker_restarts_total', 'reason="stalled"')).toBe(1);
    expect(readMetric(text, 'ws_worker_restarts_total', 'reason="died"') ?? 0).toBe(0);
    // Healthy again once replaced, whichever worker answers.
    for (let i = 0; i < 6; i++) expect((await getFresh(`${gw.httpUrl}/healthz`)).status).toBe(200);
    // The replacement serves: reconnecting clients spread over every worker again. The process
    // then shuts down cleanly (a thread ended with uWS handles open would abort this test process).
    const again = await connectSpread(gw, threads, 30);
    expect(readMetric((await getFresh(`${gw.httpUrl}/metrics`)).body, 'ws_active_connections')).toBe(
      survivors.length + 30,
    );
    await Promise.all([...again, ...survivors].map((c) => c.close()));
  });
});
