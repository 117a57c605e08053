/**
 * A minimal WebSocket client over a raw TCP socket, for the load generator: the handshake, a frame
 * parser that hands each text message to the caller as a slice of the chunk it arrived in (no copy,
 * no string, no per-message allocation), pongs, and masked text frames out. It reads server frames
 * only (unmasked, no extensions: every server here runs without compression), and copes with frames
 * split across TCP reads and with fragmented messages.
 *
 * Far cheaper per message than the `ws` package, so that a few generator processes can read what
 * the fastest servers send: a generator slower than the server would measure itself.
 */
import { randomBytes } from 'node:crypto';
import net from 'node:net';
import { performance } from 'node:perf_hooks';

const OPCODE_CONTINUATION = 0x0;
const OPCODE_TEXT = 0x1;
const OPCODE_BINARY = 0x2;
const OPCODE_CLOSE = 0x8;
const OPCODE_PING = 0x9;
const HEADER_END = Buffer.from('\r\n\r\n');
const MAX_HANDSHAKE_BYTES = 16 * 1024;

export interface WireTarget {
  readonly host: string;
  readonly port: number;
  /** Path and query of the upgrade request. */
  readonly path: string;
  /** Source address to connect from (spreads connections over several 127.0.0.x). */
  readonly localAddress?: string | undefined;
}

export interface WireHandlers {
  /** The 101 arrived; `at` is epoch ms. */
  onOpen(at: number): void;
  /**
   * A complete text message: bytes [start, end) of `chunk`, valid only during the call. `now` is
   * the epoch ms at which the TCP read that completed it was handled (one clock read per read).
   */
  onText(chunk: Buffer, start: number, end: number, now: number): void;
  /** The connection is gone (after onOpen or not); `reason` is a close code or an error message. */
  onClose(reason: string): void;
}

const epochMs = () => performance.timeOrigin + performance.now();

/**
 * One read buffer for every connection of the process (net's `onread`): each read is parsed
 * synchronously in its callback, and only an incomplete tail is copied out, so reads allocate
 * nothing and skip the stream machinery ('data' events).
 */
const READ_BUFFER = Buffer.allocUnsafe(256 * 1024);

/** A frame with the mask bit set and an all-zero key, so the payload goes out unchanged. */
function maskedFrame(opcode: number, payload: Buffer): Buffer {
  const length = payload.length;
  const header = length < 126 ? 2 : length < 65_536 ? 4 : 10;
  const frame = Buffer.allocUnsafe(header + 4 + length);
  frame[0] = 0x80 | opcode;
  if (length < 126) frame[1] = 0x80 | length;
  else if (length < 65_536) {
    frame[1] = 0x80 | 126;
    frame.writeUInt16BE(length, 2);
  } else {
    frame[1] = 0x80 | 127;
    frame.writeBigUInt64BE(BigInt(length), 2);
  }
  frame.writeUInt32BE(0, header);
  payload.copy(frame, header + 4);
  return frame;
}

export class WireConnection {
  private readonly socket: net.Socket;
  private open = false;
  private closed = false;
  /** Bytes of an incomplete handshake or frame, waiting for the next read. */
  private pending: Buffer | undefined;
  /** Parts of a fragmented text message. */
  private fragments: Buffer[] | undefined;

  constructor(
    target: WireTarget,
    private readonly handlers: WireHandlers,
  ) {
    const socket = net.connect({
      host: target.host,
      port: target.port,
      ...(target.localAddress ? { localAddress: target.localAddress } : {}),
      onread: {
        buffer: READ_BUFFER,
        callback: (bytes: number, buffer: Uint8Array) => {
          this.onData(Buffer.from(buffer.buffer, buffer.byteOffset, bytes));
          return true;
        },
      },
    });
    this.socket = socket;
    socket.setNoDelay(true);
    socket.on('connect', () => {
      socket.write(
        `GET ${target.path} HTTP/1.1\r\nHost: ${target.host}:${target.port}\r\nUpgrade: websocket\r\n` +
          `Connection: Upgrade\r\nSec-WebSocket-Key: ${randomBytes(16).toString('base64')}\r\n` +
          'Sec-WebSocket-Version: 13\r\n\r\n',
      );
    });
    socket.on('error', (error) => this.finish(error.message));
    socket.on('close', () => this.finish('closed'));
  }

  get isOpen(): boolean {
    return this.open && !this.closed;
  }

  sendText(text: string): void {
    if (this.isOpen) this.socket.write(maskedFrame(OPCODE_TEXT, Buffer.from(text)));
  }

  /** Closes the TCP connection at once (no close handshake). */
  destroy(): void {
    this.socket.destroy();
  }

  private finish(reason: string): void {
    if (this.closed) return;
    this.closed = true;
    this.socket.destroy();
    this.handlers.onClose(reason);
  }

  /** `chunk` is valid only during the call (the shared read buffer). */
  private onData(chunk: Buffer): void {
    const now = epochMs();
    let buffer = chunk;
    if (this.pending) {
      buffer = Buffer.concat([this.pending, chunk]);
      this.pending = undefined;
    }
    let offset = 0;
    if (!this.open) {
      const end = buffer.indexOf(HEADER_END);
      if (end < 0) {
        if (buffer.length > MAX_HANDSHAKE_BYTES) this.finish('handshake too large');
        else this.pending = Buffer.from(buffer);
        return;
      }
      const status = buffer.toString('latin1', 0, Math.min(end, 64));
      if (!status.startsWith('HTTP/1.1 101')) {
        this.finish(`handshake refused: ${status.slice(0, status.indexOf('\r\n'))}`);
        return;
      }
      this.open = true;
      this.handlers.onOpen(now);
      offset = end + HEADER_END.length;
    }
    offset = this.parseFrames(buffer, offset, now);
    // A copy: `chunk` is the shared read buffer, overwritten by the next read of any connection.
    if (offset < buffer.length && !this.closed) this.pending = Buffer.from(buffer.subarray(offset));
  }

  /** Handles every complete frame from `offset`; returns where the first incomplete one starts. */
  private parseFrames(buffer: Buffer, from: number, now: number): number {
    let offset = from;
    const total = buffer.length;
    while (offset + 2 <= total && !this.closed) {
      const b0 = buffer[offset]!;
      const b1 = buffer[offset + 1]!;
      let length = b1 & 0x7f;
      let header = 2;
      if (length === 126) {
        if (offset + 4 > total) break;
        length = buffer.readUInt16BE(offset + 2);
        header = 4;
      } else if (length === 127) {
        if (offset + 10 > total) break;
        length = buffer.readUInt32BE(offset + 2) * 2 ** 32 + buffer.readUInt32BE(offset + 6);
        header = 10;
      }
      if (b1 & 0x80) {
        this.finish('masked frame from the server');
        break;
      }
      const start = offset + header;
      const end = start + length;
      if (end > total) break;
      this.onFrame(b0 & 0x80, b0 & 0x0f, buffer, start, end, now);
      offset = end;
    }
    return offset;
  }

  private onFrame(
    fin: number,
    opcode: number,
    buffer: Buffer,
    start: number,
    end: number,
    now: number,
  ): void {
    switch (opcode) {
      case OPCODE_TEXT:
      case OPCODE_BINARY:
        if (fin) this.handlers.onText(buffer, start, end, now);
        else this.fragments = [Buffer.from(buffer.subarray(start, end))];
        return;
      case OPCODE_CONTINUATION: {
        if (!this.fragments) return;
        this.fragments.push(Buffer.from(buffer.subarray(start, end)));
        if (!fin) return;
        const message = Buffer.concat(this.fragments);
        this.fragments = undefined;
        this.handlers.onText(message, 0, message.length, now);
        return;
      }
      case OPCODE_PING:
        this.socket.write(maskedFrame(0xa, Buffer.from(buffer.subarray(start, end))));
        return;
      case OPCODE_CLOSE:
        this.finish(end - start >= 2 ? String(buffer.readUInt16BE(start)) : 'close');
        return;
      default:
        return; // pong
    }
  }
}
