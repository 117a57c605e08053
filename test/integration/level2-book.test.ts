import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { BookReplica } from '../support/book-replica.js';
import { startTestGateway, type TestGateway } from '../support/gateway.js';
import { TestClient } from '../support/ws-client.js';

let gw: TestGateway;

beforeAll(async () => {
  gw = await startTestGateway({ SIM_EVENTS_PER_SEC: '300' });
});
afterAll(() => gw.stop());

interface RestBook {
  bids: [string, string, number][];
  asks: [string, string, number][];
  sequence: number;
}

async function compareWithRest(client: TestClient, replica: BookReplica, productId: string): Promise<number> {
  const rest = await gw.getJson<RestBook>(`/products/${productId}/book?level=2`);
  expect(rest.status).toBe(200);
  await client.next((m) => {
    replica.apply(m);
    return replica.sequence >= rest.body.sequence;
  });
  const ours = replica.history.get(rest.body.sequence);
  expect(ours, `client book at sequence ${rest.body.sequence}`).toBeDefined();
  expect(ours).toEqual({
    bids: rest.body.bids.map(([p, s]) => [p, s]),
    asks: rest.body.asks.map(([p, s]) => [p, s]),
  });
  return rest.body.sequence;
}

describe('level2: a client book built from snapshot + l2update equals the gateway book', () => {
  it('matches GET /products/{id}/book?level=2 at the same sequence, with no update missed or doubled', async () => {
    const client = await TestClient.connect(gw.wsUrl);
    const replica = new BookReplica();
    client.subscribe(['level2'], ['BTC-USD']);
    const snapshot = await client.nextOfType('snapshot');
    replica.apply(snapshot);
    let last = 0;
    for (let round = 0; round < 5; round++) last = await compareWithRest(client, replica, 'BTC-USD');
    expect(last).toBeGreaterThan(snapshot.sequence as number);
    // level2 sequences are consecutive: every upstream event changes the book.
    const seen = replica.sequences;
    for (let i = 1; i < seen.length; i++) expect(seen[i]).toBe(seen[i - 1]! + 1);
    await client.close();
  });

  it('level2_batch converges to the same book', async () => {
    const client = await TestClient.connect(gw.wsUrl);
    const replica = new BookReplica();
    client.subscribe(['level2_batch'], ['ETH-BTC']);
    replica.apply(await client.nextOfType('snapshot'));
    // Batched sequences jump, so compare at a batch boundary: wait for a REST sequence the batch reaches exactly.
    for (let attempt = 0; attempt < 50; attempt++) {
      const update = await client.nextOfType('l2update');
      replica.apply(update);
      const rest = await gw.getJson<RestBook>('/products/ETH-BTC/book?level=2');
      if (rest.body.sequence !== replica.sequence) continue;
      expect(replica.levels()).toEqual({
        bids: rest.body.bids.map(([p, s]) => [p, s]),
        asks: rest.body.asks.map(([p, s]) => [p, s]),
      });
      await client.close();
      return;
    }
    throw new Error('never caught the REST book at a batch boundary');
  });

  it('many subscribers joining at different moments all track the book exactly', async () => {
    const clients = await Promise.all(Array.from({ length: 8 }, () => TestClient.connect(gw.wsUrl)));
    const replicas = clients.map(() => new BookReplica());
    for (const [i, client] of clients.entries()) {
      client.subscribe(['level2'], ['SOL-USD']);
      replicas[i]!.apply(await client.nextOfType('snapshot'));
    }
    for (const [i, client] of clients.entries()) await compareWithRest(client, replicas[i]!, 'SOL-USD');
    await Promise.all(clients.map((c) => c.close()));
  });
});
