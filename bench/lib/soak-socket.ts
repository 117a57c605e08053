/** The soak's short-lived WebSockets (churn, stalled and hostile clients): open one, see how it ends. */
import WebSocket from 'ws';

const HANDSHAKE_TIMEOUT_MS = 10_000;

/** Close codes of sockets that have closed, so closeCodeOf can answer after the event. */
const closedCode = new WeakMap<WebSocket, number>();

/** Opens a socket, or says why the handshake failed (refused, timed out). */
export function openSocket(url: string): Promise<{ ws: WebSocket } | { error: string }> {
  const ws = new WebSocket(url, { perMessageDeflate: false, handshakeTimeout: HANDSHAKE_TIMEOUT_MS });
  ws.once('close', (code) => closedCode.set(ws, code));
  return new Promise((resolve) => {
    ws.once('open', () => {
      ws.removeAllListeners('error');
      ws.on('error', () => {}); // after 'open', 'close' follows and says how it ended
      resolve({ ws });
    });
    ws.once('error', (error) => resolve({ error: error.message }));
  });
}

/** The close code once the socket has closed ('open' if it is still open after `timeoutMs`). */
export function closeCodeOf(ws: WebSocket, timeoutMs: number): Promise<number | 'open'> {
  if (ws.readyState === WebSocket.CLOSED) return Promise.resolve(closedCode.get(ws) ?? 1006);
  return new Promise((resolve) => {
    const timer = setTimeout(() => resolve('open'), timeoutMs);
    ws.once('close', (code) => {
      clearTimeout(timer);
      resolve(code);
    });
  });
}

export const increment = (counts: Record<string, number>, key: string | number) => {
  counts[key] = (counts[key] ?? 0) + 1;
};

/** openSocket for a load that tallies its connections: a failed handshake is counted by its error. */
export async function openCounted(
  url: string,
  tally: { opened: number; readonly connectFailures: Record<string, number> },
): Promise<WebSocket | undefined> {
  const opened = await openSocket(url);
  if ('error' in opened) {
    increment(tally.connectFailures, opened.error);
    return undefined;
  }
  tally.opened++;
  return opened.ws;
}
