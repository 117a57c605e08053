/**
 * Stalled clients: a connection that subscribes to everything and stops reading (its TCP socket
 * paused, so the gateway's buffer for it fills), as a stuck client does. After `holdMs` it reads
 * again and sees how the gateway dealt with it: cut off with ErrSlowConsume (close 4002) is the
 * slow-consumer path working (docs/protocol.md §6); still open means it was not cut off.
 */
import { Pacer } from './soak-pacer.js';
import { closeCodeOf, increment, openCounted } from './soak-socket.js';

const CHANNELS = ['level2', 'matches', 'ticker'];
/** After reading again, how long the backlog and the close may take to arrive. */
const DRAIN_TIMEOUT_MS = 20_000;

export interface StallTally {
  opened: number;
  connectFailures: Record<string, number>;
  /**
   * How each one ended once it read again, by close code; `open`: not cut off; `ended early`: the
   * soak stopped before its hold was over.
   */
  outcomes: Record<string, number>;
}

export function stalls(url: string, productIds: readonly string[], everyMs: number, holdMs: number) {
  const tally: StallTally = { opened: 0, connectFailures: {}, outcomes: {} };
  const one = async (): Promise<void> => {
    const ws = await openCounted(url, tally);
    if (!ws) return;
    ws.send(JSON.stringify({ type: 'subscribe', product_ids: productIds, channels: CHANNELS }));
    // ws's own pause(): the TCP socket stops being read, and ws does not resume it by itself.
    ws.pause();
    const held = await new Promise<boolean>((resolve) => {
      const timer = setTimeout(() => resolve(true), holdMs);
      void pacer.stopped.then(() => {
        clearTimeout(timer);
        resolve(false);
      });
    });
    if (!held) {
      increment(tally.outcomes, 'ended early');
      ws.terminate();
      return;
    }
    ws.resume();
    const outcome = await closeCodeOf(ws, DRAIN_TIMEOUT_MS);
    increment(tally.outcomes, outcome);
    if (outcome === 'open') ws.terminate();
  };
  // Bounded: each holds up to the gateway's hard per-connection limit (WS_MAX_BACKPRESSURE_BYTES).
  const pacer = new Pacer(everyMs, Math.ceil((holdMs + DRAIN_TIMEOUT_MS) / everyMs) + 1, one);
  return { tally, pacer };
}
