/**
 * The end of the soak, once the load and the publisher have stopped: the REST books at rest, and
 * ws_active_connections back to the number of clients still connected.
 */
import { performance } from 'node:perf_hooks';
import type { GatewayProcess } from './gateway-process.js';
import { sleep } from './report.js';
import type { RestBook } from './soak-steady.js';

/** How long the connection count and the books may take to come to rest. */
export const SETTLE_TIMEOUT_MS = 30_000;

async function restBooks(
  gateway: GatewayProcess,
  productIds: readonly string[],
): Promise<Map<string, RestBook>> {
  const entries = await Promise.all(
    productIds.map(async (id) => {
      const response = await fetch(`${gateway.httpUrl}/products/${id}/book?level=2`);
      if (!response.ok) throw new Error(`GET /products/${id}/book: ${response.status}`);
      return [id, (await response.json()) as RestBook] as const;
    }),
  );
  return new Map(entries);
}

/** The REST books once two reads a second apart agree (the publisher has stopped). */
export async function restingBooks(
  gateway: GatewayProcess,
  productIds: readonly string[],
): Promise<Map<string, RestBook>> {
  const deadline = performance.now() + SETTLE_TIMEOUT_MS;
  let books = await restBooks(gateway, productIds);
  for (;;) {
    await sleep(1_000);
    const next = await restBooks(gateway, productIds);
    const moved = productIds.some((id) => next.get(id)!.sequence !== books.get(id)!.sequence);
    books = next;
    if (!moved || performance.now() > deadline) return books;
  }
}

/** Waits until ws_active_connections equals `expected`; the last value read and how long it took. */
export async function connectionsSettle(gateway: GatewayProcess, expected: () => number) {
  const started = performance.now();
  let value = Number.NaN;
  while (performance.now() - started < SETTLE_TIMEOUT_MS) {
    value = (await gateway.scrape()).value('ws_active_connections') ?? Number.NaN;
    if (value === expected()) break;
    await sleep(100);
  }
  return { value, expected: expected(), ms: performance.now() - started };
}
