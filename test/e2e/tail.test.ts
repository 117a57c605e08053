import { execFile, spawn } from 'node:child_process';
import { once } from 'node:events';
import { existsSync, mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startTestGateway, type TestGateway } from '../support/gateway.js';
import { MAIN } from '../support/process.js';

const run = promisify(execFile);
let gw: TestGateway;
beforeAll(async () => {
  gw = await startTestGateway({ SIM_EVENTS_PER_SEC: '50' });
});
afterAll(() => gw.stop());

/** Polls a condition on something that has no event to await (a terminal's screen), with a deadline. */
async function poll<T>(
  read: () => Promise<T>,
  ok: (value: T) => boolean,
  what: string,
  timeoutMs = 15_000,
): Promise<T> {
  const deadline = performance.now() + timeoutMs;
  for (;;) {
    const value = await read();
    if (ok(value)) return value;
    if (performance.now() > deadline) throw new Error(`${what}: last seen ${JSON.stringify(value)}`);
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
}

describe('matchbook-gateway tail', () => {
  it('in a real terminal (tmux pty): redraws tickers, the book and the state in place; Ctrl-C exits 0', async () => {
    const socket = `mbg-tail-${process.pid}`;
    const tmux = (...args: string[]) => run('tmux', ['-L', socket, '-f', '/dev/null', ...args]);
    const exitFile = join(mkdtempSync(join(tmpdir(), 'mbg-tail-')), 'exit-code');
    // bash only records tail's exit code; its trap runs a handler (reset for the child), so Ctrl-C
    // reaches tail and leaves bash waiting for it.
    const tail = `${process.execPath} ${MAIN} tail ${gw.wsUrl} BTC-USD ETH-USD --book ETH-USD --depth 5`;
    await tmux(
      'new-session',
      '-d',
      '-s',
      't',
      '-x',
      '100',
      '-y',
      '30',
      `bash -c 'trap true INT; ${tail}; echo $? > ${exitFile}'`,
    );
    try {
      const screen = async () => (await tmux('capture-pane', '-p', '-t', 't')).stdout;
      const first = await poll(
        screen,
        (s) => s.includes('[open]') && /ETH-USD book at sequence \d+/.test(s) && /BTC-USD\s+\d+\.\d+/.test(s),
        'tail never showed an open connection, tickers and the book',
      );
      const sequenceOf = (s: string) => Number(/ETH-USD book at sequence (\d+)/.exec(s)?.[1]);
      const later = await poll(
        screen,
        (s) => sequenceOf(s) > sequenceOf(first),
        'the book never moved on screen',
      );
      // Redrawn in place: one header, one row per product, five book rows, whatever has happened.
      expect(later.match(/matchbook-gateway tail/g)).toHaveLength(1);
      expect(later.match(/^BTC-USD /gm)).toHaveLength(1);
      const bookRows = later
        .split('\n')
        .filter((l) => /^\s+\d+\.\d+\s+\d+\.\d+\s+\d+\.\d+\s+\d+\.\d+\s*$/.test(l));
      expect(bookRows).toHaveLength(5);
      await tmux('send-keys', '-t', 't', 'C-c');
      const code = await poll(
        async () => (existsSync(exitFile) ? readFileSync(exitFile, 'utf8').trim() : ''),
        (c) => c !== '',
        'tail did not exit on Ctrl-C',
      );
      expect(code).toBe('0');
    } finally {
      await tmux('kill-server').catch(() => undefined);
    }
  }, 40_000);

  it('piped: plain lines (no escape codes) for grep, and SIGINT exits 0', async () => {
    const child = spawn(process.execPath, [MAIN, 'tail', gw.wsUrl, 'SOL-USD'], {
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let out = '';
    const seen = new Promise<void>((resolve) => {
      child.stdout.on('data', (chunk) => {
        out += chunk;
        if (/^ticker SOL-USD price=\d/m.test(out) && /^book SOL-USD sequence=\d+ bid=/m.test(out)) resolve();
      });
    });
    await seen;
    child.kill('SIGINT');
    const [code] = await once(child, 'exit');
    expect(code).toBe(0);
    expect(out.split('\n')[0]).toBe('state open');
    expect(out).not.toContain('\u001b');
  }, 30_000);

  it('bad arguments: a clear message and exit code 2', async () => {
    const error = await run(process.execPath, [MAIN, 'tail', 'btc-usd']).catch(
      (e: { code: number; stderr: string }) => e,
    );
    expect(error).toMatchObject({ code: 2 });
    expect((error as { stderr: string }).stderr).toContain(
      '"btc-usd" is neither a ws:// URL nor a product id like BTC-USD',
    );
  });
});
