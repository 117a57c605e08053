/**
 * Connection churn: a connection every so often that subscribes to one channel of one product,
 * holds it for a moment and leaves, either with a close frame (1000) or abruptly (the TCP
 * connection dropped with no close frame, as a killed browser tab or a lost network does).
 */
import WebSocket from 'ws';
import { sleep } from './report.js';
import { Pacer } from './soak-pacer.js';
import { closeCodeOf, increment, openCounted } from './soak-socket.js';

const CHANNELS = ['level2', 'matches', 'ticker', 'heartbeat'];
const HOLD_MIN_MS = 200;
const HOLD_MAX_MS = 3_000;
/** One in this many leaves without a close frame. */
const ABRUPT_EVERY = 3;
const REPLY_TIMEOUT_MS = 10_000;

export interface ChurnTally {
  opened: number;
  subscribed: number;
  closedGracefully: number;
  droppedAbruptly: number;
  /** Handshakes that failed, by error. */
  connectFailures: Record<string, number>;
  /** Connections the gateway closed before the client left, by close code. */
  closedByServer: Record<string, number>;
}

export function churn(url: string, productIds: readonly string[], perSecond: number) {
  const tally: ChurnTally = {
    opened: 0,
    subscribed: 0,
    closedGracefully: 0,
    droppedAbruptly: 0,
    connectFailures: {},
    closedByServer: {},
  };
  let n = 0;
  const one = async () => {
    const i = n++;
    const ws = await openCounted(url, tally);
    if (!ws) return;
    const reply = new Promise<boolean>((resolve) => {
      ws.on('message', (data) => {
        if (String(data).startsWith('{"type":"subscriptions"')) resolve(true);
      });
      ws.once('close', () => resolve(false));
    });
    ws.send(
      JSON.stringify({
        type: 'subscribe',
        product_ids: [productIds[i % productIds.length]],
        channels: [CHANNELS[i % CHANNELS.length]],
      }),
    );
    const subscribed = await Promise.race([reply, sleep(REPLY_TIMEOUT_MS).then(() => false)]);
    if (subscribed) {
      tally.subscribed++;
      await sleep(HOLD_MIN_MS + ((i * 7919) % (HOLD_MAX_MS - HOLD_MIN_MS)));
    }
    if (ws.readyState !== WebSocket.OPEN) {
      increment(tally.closedByServer, await closeCodeOf(ws, REPLY_TIMEOUT_MS));
    } else if (i % ABRUPT_EVERY === 0) {
      ws.terminate();
      tally.droppedAbruptly++;
    } else {
      ws.close(1000);
      await closeCodeOf(ws, REPLY_TIMEOUT_MS);
      tally.closedGracefully++;
    }
  };
  return { tally, pacer: new Pacer(1000 / perSecond, Math.max(10, perSecond * 5), one) };
}
