import { once } from 'node:events';
import { connect, type Socket } from 'node:net';
import WebSocket from 'ws';

/**
 * Raw-socket helpers for hostile-client tests: every socket can be bound to its own 127.0.0.x
 * source address (on Linux all of 127.0.0.0/8 is loopback), so each hostile client has its own
 * per-IP counters in the gateway.
 */

export function upgradeRequest(port: number, host = '127.0.0.1'): string {
  return (
    `GET / HTTP/1.1\r\nHost: ${host}:${port}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n` +
    'Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n'
  );
}

/** A connected TCP socket from `localAddress`; errors after connect are swallowed (hostile peers get reset). */
export async function connectRaw(port: number, localAddress: string, host = '127.0.0.1'): Promise<Socket> {
  const socket = connect({ port, host, localAddress });
  socket.on('error', () => {});
  await once(socket, 'connect');
  return socket;
}

export interface UpgradeReply {
  /** HTTP status of the reply, 0 if the server closed the connection without one. */
  readonly status: number;
  /** Lower-case header names. */
  readonly headers: Readonly<Record<string, string>>;
  /** The body of a refusal (read until the server closed, at most 2 s); empty after a 101. */
  readonly body: string;
  /** Still open after a 101 (the caller owns it); destroyed otherwise. */
  readonly socket: Socket;
}

/** Sends a complete upgrade request from `localAddress` and resolves with the response head. */
export async function rawUpgrade(
  port: number,
  localAddress: string,
  host = '127.0.0.1',
): Promise<UpgradeReply> {
  const socket = await connectRaw(port, localAddress, host);
  socket.write(upgradeRequest(port, host));
  let text = '';
  const head = await new Promise<string>((resolve) => {
    const onData = (chunk: Buffer) => {
      text += chunk.toString('latin1');
      const end = text.indexOf('\r\n\r\n');
      if (end >= 0) {
        done();
        resolve(text.slice(0, end));
      }
    };
    const onEnd = () => {
      done();
      resolve(text);
    };
    // A server that never answers is a failure the caller sees as status 0, not a hang.
    const timer = setTimeout(onEnd, 5_000);
    const done = () => {
      clearTimeout(timer);
      socket.off('data', onData);
      socket.off('close', onEnd);
      socket.off('end', onEnd);
    };
    socket.on('data', onData);
    socket.on('close', onEnd);
    socket.on('end', onEnd);
  });
  const [statusLine = '', ...lines] = head.split('\r\n');
  const status = Number(/^HTTP\/1\.1 (\d{3})/.exec(statusLine)?.[1] ?? 0);
  const headers: Record<string, string> = {};
  for (const line of lines) {
    const colon = line.indexOf(':');
    if (colon > 0) headers[line.slice(0, colon).trim().toLowerCase()] = line.slice(colon + 1).trim();
  }
  let body = '';
  if (status !== 101) {
    body = text.slice(head.length + 4);
    socket.on('data', (chunk: Buffer) => {
      body += chunk.toString('latin1');
    });
    await closedWithin(socket, 2_000);
    socket.destroy();
  }
  return { status, headers, body, socket };
}

/** Resolves when the socket is closed (by either side), or with false after `timeoutMs`. */
export function closedWithin(socket: Socket, timeoutMs: number): Promise<boolean> {
  if (socket.destroyed || socket.closed) return Promise.resolve(true);
  return new Promise((resolve) => {
    const timer = setTimeout(() => {
      socket.off('close', onClose);
      resolve(false);
    }, timeoutMs);
    const onClose = () => {
      clearTimeout(timer);
      resolve(true);
    };
    socket.once('close', onClose);
    // Drain whatever the server still sends, so its close is seen.
    socket.resume();
  });
}

export interface FrameOptions {
  readonly opcode: number;
  readonly payload: Buffer;
  readonly fin?: boolean;
  /** RSV1..3 bits as a number 0..7. */
  readonly rsv?: number;
  /** Clients must mask; false makes a protocol violation. */
  readonly mask?: boolean;
  /** Writes this in the 64-bit length field instead of the real length (a lie about the size). */
  readonly claimedLength?: bigint;
}

/** Encodes one WebSocket frame of any size (7-, 16- or 64-bit length), masked unless told otherwise. */
export function encodeFrame(options: FrameOptions): Buffer {
  const { opcode, payload, fin = true, rsv = 0, mask = true, claimedLength } = options;
  const first = (fin ? 0x80 : 0) | ((rsv & 7) << 4) | (opcode & 0x0f);
  const maskBit = mask ? 0x80 : 0;
  let header: Buffer;
  if (claimedLength !== undefined) {
    header = Buffer.alloc(10);
    header[1] = maskBit | 127;
    header.writeBigUInt64BE(claimedLength, 2);
  } else if (payload.length < 126) {
    header = Buffer.alloc(2);
    header[1] = maskBit | payload.length;
  } else if (payload.length < 65536) {
    header = Buffer.alloc(4);
    header[1] = maskBit | 126;
    header.writeUInt16BE(payload.length, 2);
  } else {
    header = Buffer.alloc(10);
    header[1] = maskBit | 127;
    header.writeBigUInt64BE(BigInt(payload.length), 2);
  }
  header[0] = first;
  if (!mask) return Buffer.concat([header, payload]);
  const key = Buffer.from([0x37, 0xfa, 0x21, 0x3d]);
  const masked = Buffer.alloc(payload.length);
  for (let i = 0; i < payload.length; i++) masked[i] = payload[i]! ^ key[i % 4]!;
  return Buffer.concat([header, key, masked]);
}

/** Resolves after `ms`: for pacing hostile loops, never for synchronisation. */
export function pause(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

/** Runs `body` in `concurrency` parallel loops, each starting a new round until `deadline` (performance.now()). */
export async function loopUntil(
  deadline: number,
  concurrency: number,
  body: (lane: number, round: number) => Promise<void>,
): Promise<void> {
  await Promise.all(
    Array.from({ length: concurrency }, async (_, lane) => {
      for (let round = 0; performance.now() < deadline; round++) await body(lane, round);
    }),
  );
}

export type Received = Record<string, unknown> & { type: string };

/** A `ws` client for hostile use: never throws on errors, records what it got, bound to a source address. */
export interface HostileSocket {
  readonly ws: WebSocket;
  readonly messages: Received[];
  readonly closed: Promise<{ code: number; reason: string }>;
  /** Resolves true when a matching message has arrived, false if the socket closed or time ran out first. */
  until(predicate: (m: Received) => boolean, timeoutMs?: number): Promise<boolean>;
}

/** Opens a WebSocket from `localAddress`; resolves with the HTTP status instead when the upgrade is refused. */
export function openHostile(
  url: string,
  localAddress: string,
): Promise<{ socket: HostileSocket } | { refused: number }> {
  return new Promise((resolve) => {
    const ws = new WebSocket(url, { localAddress, handshakeTimeout: 5_000 });
    const messages: Received[] = [];
    const waiters = new Set<() => void>();
    let isClosed = false;
    const closed = new Promise<{ code: number; reason: string }>((resolveClosed) => {
      ws.on('close', (code, reason) => {
        isClosed = true;
        for (const wake of waiters) wake();
        resolveClosed({ code, reason: String(reason) });
      });
    });
    ws.on('message', (data, isBinary) => {
      let message: Received;
      try {
        message = isBinary ? { type: '(binary)' } : (JSON.parse(String(data)) as Received);
      } catch {
        message = { type: '(unparseable)', text: String(data) };
      }
      messages.push(message);
      for (const wake of waiters) wake();
    });
    let opened = false;
    ws.on('error', (error) => {
      if (opened) return;
      const status = /Unexpected server response: (\d+)/.exec(error.message)?.[1];
      resolve({ refused: Number(status ?? 0) });
    });
    ws.once('open', () => {
      opened = true;
      const until = (predicate: (m: Received) => boolean, timeoutMs = 5_000) =>
        new Promise<boolean>((resolveUntil) => {
          let checked = 0;
          const check = () => {
            for (; checked < messages.length; checked++) {
              if (predicate(messages[checked]!)) return finish(true);
            }
            if (isClosed) finish(false);
          };
          const timer = setTimeout(() => finish(false), timeoutMs);
          const finish = (result: boolean) => {
            clearTimeout(timer);
            waiters.delete(check);
            resolveUntil(result);
          };
          waiters.add(check);
          check();
        });
      resolve({ socket: { ws, messages, closed, until } });
    });
  });
}
