/**
 * Hostile clients, one kind after another: each sends what a broken or malicious client sends and
 * records how the gateway answered (docs/protocol.md §2.5, §8, §9). The expected answer of each
 * kind is in HOSTILE_KINDS; the soak reports any other.
 */
import type WebSocket from 'ws';
import { Pacer } from './soak-pacer.js';
import { closeCodeOf, increment, openSocket } from './soak-socket.js';

/** Longer than SUBSCRIBE_TIMEOUT_MS (5 s by default) plus its 100 ms check, for the `silent` kind. */
const ANSWER_TIMEOUT_MS = 10_000;

interface HostileKind {
  readonly name: string;
  /** What the gateway should answer: a close code, or `error <code>` for an error on an open connection. */
  readonly expected: string;
  readonly act: (ws: WebSocket) => void;
}

export const HOSTILE_KINDS: readonly HostileKind[] = [
  { name: 'garbage', expected: 'error malformed_json', act: (ws) => ws.send('{"type": subscribe,,') },
  {
    name: 'invalid-utf8',
    expected: '1006',
    act: (ws) => ws.send(Buffer.from([0xc3, 0x28, 0xff]), { binary: false }),
  },
  { name: 'oversized', expected: '1009', act: (ws) => ws.send('x'.repeat(8_000)) },
  { name: 'huge', expected: '1006', act: (ws) => ws.send('x'.repeat(20_000)) },
  {
    name: 'flood',
    expected: '4003',
    act: (ws) => {
      for (let i = 0; i < 300; i++) ws.send('{"type":"unsubscribe","channels":["heartbeat"]}');
    },
  },
  { name: 'silent', expected: '4001', act: () => {} },
];

export interface HostileTally {
  connectFailures: Record<string, number>;
  /** By kind: answers seen, by answer. */
  answers: Record<string, Record<string, number>>;
}

/** How the gateway answered: the first error on a connection left open, else the close code. */
async function answerTo(ws: WebSocket, kind: HostileKind): Promise<string> {
  if (kind.expected.startsWith('error ')) {
    const error = new Promise<string>((resolve) => {
      ws.on('message', (data) => {
        const text = String(data);
        const code = /"code":"([a-z_]+)"/.exec(text)?.[1];
        if (text.startsWith('{"type":"error"')) resolve(`error ${code ?? 'unknown'}`);
      });
    });
    kind.act(ws);
    const answer = await Promise.race([error, closeCodeOf(ws, ANSWER_TIMEOUT_MS).then(String)]);
    ws.close(1000);
    await closeCodeOf(ws, ANSWER_TIMEOUT_MS);
    return answer;
  }
  kind.act(ws);
  return String(await closeCodeOf(ws, ANSWER_TIMEOUT_MS));
}

export function hostile(url: string, everyMs: number) {
  const tally: HostileTally = { connectFailures: {}, answers: {} };
  let n = 0;
  const one = async () => {
    const kind = HOSTILE_KINDS[n++ % HOSTILE_KINDS.length]!;
    const opened = await openSocket(url);
    if ('error' in opened) {
      increment(tally.connectFailures, opened.error);
      return;
    }
    const answer = await answerTo(opened.ws, kind);
    if (answer === 'open') opened.ws.terminate();
    const answers = tally.answers[kind.name] ?? {};
    tally.answers[kind.name] = answers;
    increment(answers, answer);
  };
  return { tally, pacer: new Pacer(everyMs, Math.ceil(ANSWER_TIMEOUT_MS / everyMs) * 2 + 1, one) };
}
