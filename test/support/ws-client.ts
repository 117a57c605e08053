import WebSocket from 'ws';

export type Message = Record<string, unknown> & { type: string };

interface Waiter {
  readonly predicate: (m: Message) => boolean;
  readonly resolve: (m: Message) => void;
  readonly reject: (e: Error) => void;
  readonly timer: NodeJS.Timeout;
}

/**
 * A real WebSocket client that records every message and lets a test await the next message
 * matching a predicate (an event, not a sleep).
 */
export class TestClient {
  readonly messages: Message[] = [];
  /** performance.now() when each message arrived, by index in `messages`. */
  readonly arrivals: number[] = [];
  private readonly waiters: Waiter[] = [];
  private cursor = 0;
  readonly closed: Promise<{ code: number; reason: string }>;

  private constructor(readonly socket: WebSocket) {
    socket.on('message', (data, isBinary) => {
      const message = JSON.parse(isBinary ? '{"type":"binary"}' : String(data)) as Message;
      this.messages.push(message);
      this.arrivals.push(performance.now());
      this.dispatch();
    });
    this.closed = new Promise((resolve) => {
      socket.on('close', (code, reason) => {
        for (const waiter of this.waiters.splice(0)) {
          clearTimeout(waiter.timer);
          waiter.reject(new Error(`socket closed (${code}) while waiting`));
        }
        resolve({ code, reason: String(reason) });
      });
    });
  }

  static connect(url: string, options: WebSocket.ClientOptions = {}): Promise<TestClient> {
    return new Promise((resolve, reject) => {
      const socket = new WebSocket(url, options);
      const client = new TestClient(socket);
      socket.once('open', () => resolve(client));
      socket.once('error', reject);
    });
  }

  send(value: unknown): void {
    this.socket.send(typeof value === 'string' ? value : JSON.stringify(value));
  }

  subscribe(channels: unknown[], productIds?: string[]): void {
    this.send({ type: 'subscribe', channels, ...(productIds ? { product_ids: productIds } : {}) });
  }

  /** Resolves with the next not-yet-consumed message that matches (messages before it are skipped). */
  next(predicate: (m: Message) => boolean = () => true, timeoutMs = 5_000): Promise<Message> {
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        this.waiters.splice(this.waiters.indexOf(waiter), 1);
        reject(new Error(`no matching message within ${timeoutMs} ms`));
      }, timeoutMs);
      const waiter: Waiter = { predicate, resolve, reject, timer };
      this.waiters.push(waiter);
      this.dispatch();
    });
  }

  nextOfType(type: string, timeoutMs?: number): Promise<Message> {
    return this.next((m) => m.type === type, timeoutMs);
  }

  close(): Promise<{ code: number; reason: string }> {
    this.socket.close();
    return this.closed;
  }

  /** Drops the TCP connection without a close handshake (an abrupt disconnect). */
  terminate(): Promise<{ code: number; reason: string }> {
    this.socket.terminate();
    return this.closed;
  }

  private dispatch(): void {
    while (this.waiters.length > 0 && this.cursor < this.messages.length) {
      const message = this.messages[this.cursor++]!;
      const index = this.waiters.findIndex((w) => w.predicate(message));
      if (index < 0) continue;
      const [waiter] = this.waiters.splice(index, 1);
      clearTimeout(waiter!.timer);
      waiter!.resolve(message);
    }
  }
}
