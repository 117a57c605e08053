import { type Address16, addressKey } from './client-address.js';
import type { SharedCounterTable } from './shared-counters.js';

export type AdmissionRejection = 'max_connections' | 'per_ip_limit' | 'table_full';

/** The key under which the table counts every connection of the process (no client has this address). */
const TOTAL_KEY = new Int32Array([-1, -1, -1, -1]);

/**
 * Concurrent-connection admission, exact across threads: the process-wide total and the count
 * per client IP live in one SharedCounterTable, one column per thread, so a thread that dies
 * takes exactly its own connections with it (clearColumn) and nothing leaks.
 */
export class ConnectionAdmission {
  /**
   * The key of the address being counted. One per thread is enough (the table copies the keys it
   * keeps), so a connection holds no key of its own: its address is passed again on release.
   */
  private readonly key = new Int32Array(4);

  constructor(
    private readonly table: SharedCounterTable,
    private readonly column: number,
    private readonly maxConnections: number,
    private readonly maxPerIp: number,
  ) {}

  /** Reserves a connection for the client address, or says why not. */
  tryAcquire(client: Address16): AdmissionRejection | undefined {
    const total = this.table.tryIncrement(TOTAL_KEY, this.column, this.maxConnections);
    if (total === -1) return 'max_connections';
    if (total === -2) return 'table_full';
    const perIp = this.table.tryIncrement(addressKey(client, this.key), this.column, this.maxPerIp);
    if (perIp >= 0) return undefined;
    this.table.decrement(TOTAL_KEY, this.column);
    return perIp === -1 ? 'per_ip_limit' : 'table_full';
  }

  release(client: Address16): void {
    this.table.decrement(addressKey(client, this.key), this.column);
    this.table.decrement(TOTAL_KEY, this.column);
  }
}

/** Table size for a connection cap: room for every connection's IP at a load factor of 2/3. */
export function admissionTableCapacity(maxConnections: number): number {
  return 2 ** Math.ceil(Math.log2(Math.max(1024, Math.ceil((maxConnections + 1) * 1.5))));
}
