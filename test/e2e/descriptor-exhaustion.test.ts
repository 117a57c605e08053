import { execFileSync } from 'node:child_process';
import { readFileSync, statSync } from 'node:fs';
import { request } from 'node:http';
import { connect, type Socket } from 'node:net';
import { setTimeout as pause } from 'node:timers/promises';
import { afterEach, describe, expect, it } from 'vitest';
import { readMetric } from '../support/gateway.js';
import { type GatewayProcess, spawnGateway } from '../support/process.js';
import { type Message, TestClient } from '../support/ws-client.js';

/**
 * Enough for the reserve (one full accept queue of 513 per listen socket, and 64) with room for
 * connections: with 2 worker threads the guard pauses at 958 open descriptors, with none at 1471.
 */
const OPEN_FILES = 2_048;
/** Past either pause point by far more than one accept queue. */
const FLOOD = 2_400;
const FLOOD_SOURCES = [
  '127.0.0.2',
  '127.0.0.3',
  '127.0.0.4',
  '127.0.0.5',
  '127.0.0.6',
  '127.0.0.7',
  '127.0.0.8',
  '127.0.0.9',
];
const POLLS = 20;
/**
 * Admin probes sent while the flood's first accept burst lands, spaced over the guard's 20 ms
 * reading interval: the moment a burst past the reserve would leave libuv no descriptor for them.
 */
const BURST_PROBES = 16;
const BURST_PROBE_SPACING_MS = 2;
/** Spacing of the health polls, so that they span the flood rather than its first instant. */
const POLL_SPACING_MS = 100;
const ANSWER_WITHIN_MS = 1_000;
/** Well below one core per thread: a spinning accept loop takes a whole core per listening thread. */
const MAX_CPU_SHARE = 0.4;
const CLOCK_TICKS = Number(execFileSync('getconf', ['CLK_TCK'], { encoding: 'utf8' }));

let gateway: GatewayProcess | undefined;
const clients: TestClient[] = [];
const flood: Socket[] = [];
afterEach(async () => {
  for (const socket of flood.splice(0)) socket.destroy();
  for (const client of clients.splice(0)) client.socket.terminate();
  if (gateway) {
    gateway.child.kill('SIGKILL');
    await gateway.exited();
    gateway = undefined;
  }
});

/** utime + stime of every thread of the process, in seconds. */
function cpuSeconds(pid: number): number {
  const fields = readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1]!.split(' ');
  // Fields 14 and 15 of proc(5), counted from the state (field 3) here.
  return (Number(fields[11]) + Number(fields[12])) / CLOCK_TICKS;
}

/** A GET on a fresh connection (no keep-alive: each poll must be accepted anew), failing past `timeoutMs`. */
function poll(url: string, timeoutMs: number): Promise<{ status: number; body: string; ms: number }> {
  const started = performance.now();
  return new Promise((resolve, reject) => {
    const req = request(
      url,
      { agent: false, headers: { connection: 'close' }, timeout: timeoutMs },
      (res) => {
        let body = '';
        res.setEncoding('utf8');
        res.on('data', (chunk) => {
          body += chunk;
        });
        res.on('end', () => resolve({ status: res.statusCode ?? 0, body, ms: performance.now() - started }));
      },
    );
    req.on('timeout', () => req.destroy(new Error(`${url}: no answer within ${timeoutMs} ms`)));
    req.on('error', reject);
    req.end();
  });
}

/**
 * Probes hung up at least once. Known gap (issue 13 part 4, still open): one turn of uSockets'
 * accept loop can take more descriptors than the reserve before the guard's next reading; in that
 * window libuv accepts and at once closes an admin connection (its EMFILE trick) until the guard
 * pauses the listeners and frees the reserve. The test prints how often that happened and requires
 * every probe answered inside its budget: a hung-up probe is tried again within that budget (as the
 * kubelet's next period would), never past it.
 */
let hungUp = 0;

/** An answer within `budgetMs`; a connection hung up in the guard's window is tried again inside that budget. */
async function probe(url: string, budgetMs: number): Promise<{ status: number; body: string; ms: number }> {
  const started = performance.now();
  for (let attempt = 0; ; attempt++) {
    const left = budgetMs - (performance.now() - started);
    try {
      const answer = await poll(url, Math.max(1, left));
      return { ...answer, ms: performance.now() - started };
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code !== 'ECONNRESET' || left <= 0) throw error;
      if (attempt === 0) hungUp++;
    }
  }
}

/** A raw TCP connection that never sends a byte; resolves once connected or refused (both expected here). */
function silentConnection(port: number, localAddress: string): Promise<'connected' | 'refused'> {
  const socket = connect({ port, host: '127.0.0.1', localAddress });
  flood.push(socket);
  return new Promise((resolve) => {
    socket.once('connect', () => resolve('connected'));
    // Refused while the listeners are closed, or reset when a closed listener drops its queue.
    socket.on('error', () => resolve('refused'));
  });
}

/** Checks a level2 stream: every l2update follows the previous message of the product by one sequence. */
function sequenceGaps(messages: readonly Message[]): string[] {
  const gaps: string[] = [];
  let last: number | undefined;
  for (const message of messages) {
    if (message.type !== 'snapshot' && message.type !== 'l2update') continue;
    const sequence = message.sequence as number;
    if (message.type === 'l2update' && last !== undefined && sequence !== last + 1)
      gaps.push(`${last} -> ${sequence}`);
    last = sequence;
  }
  return gaps;
}

describe.each([0, 2])('WS_WORKER_THREADS=%i under prlimit --nofile=2048', (threads) => {
  it('a flood of silent TCP connections past the limit: no spin, admin answers, streams complete, recovery', async () => {
    gateway = await spawnGateway(
      { WS_WORKER_THREADS: String(threads), PRODUCTS: 'BTC-USD', LOG_LEVEL: 'info' },
      ['prlimit', `--nofile=${OPEN_FILES}:${OPEN_FILES}`, '--'],
    );
    const { port, adminPort } = gateway;
    const pid = gateway.child.pid!;
    const admin = `http://127.0.0.1:${adminPort}`;
    const streaming = await TestClient.connect(`ws://127.0.0.1:${port}/`);
    clients.push(streaming);
    streaming.subscribe(['level2'], ['BTC-USD']);
    await streaming.nextOfType('snapshot');
    await streaming.nextOfType('l2update');

    // The peak the process reached, for the figures printed below (stat() of /proc/<pid>/fd gives
    // the count on Linux 6.2 and later; 0 elsewhere).
    let peakDescriptors = 0;
    const sampler = setInterval(() => {
      const size = statSync(`/proc/${pid}/fd`, { throwIfNoEntry: false })?.size ?? 0;
      peakDescriptors = Math.max(peakDescriptors, size);
    }, 1);
    sampler.unref();
    const cpuBefore = cpuSeconds(pid);
    const floodStarted = performance.now();
    const outcomes = Promise.all(
      Array.from({ length: FLOOD }, (_, i) =>
        silentConnection(port, FLOOD_SOURCES[i % FLOOD_SOURCES.length]!),
      ),
    );
    // Each probe must be answered within its budget; hang-ups are counted (see probe()).
    hungUp = 0;
    const burstProbes = Promise.allSettled(
      Array.from({ length: BURST_PROBES }, (_, i) =>
        pause(i * BURST_PROBE_SPACING_MS).then(() => probe(`${admin}/healthz`, ANSWER_WITHIN_MS)),
      ),
    );
    const answers: { healthz: number; metrics: number; ms: number; paused: number | undefined }[] = [];
    for (let i = 0; i < POLLS; i++) {
      const healthz = await probe(`${admin}/healthz`, ANSWER_WITHIN_MS);
      const metrics = await probe(`${admin}/metrics`, ANSWER_WITHIN_MS);
      answers.push({
        healthz: healthz.status,
        metrics: metrics.status,
        ms: Math.max(healthz.ms, metrics.ms),
        paused: readMetric(metrics.body, 'ws_listen_paused'),
      });
      await pause(POLL_SPACING_MS);
    }
    const duringBurst = (await burstProbes).map((outcome) =>
      outcome.status === 'fulfilled'
        ? outcome.value
        : { status: 0, body: String(outcome.reason), ms: Number.POSITIVE_INFINITY },
    );
    // Every flood connection has connected or been refused (refused or reset while the listeners were closed).
    await outcomes;
    clearInterval(sampler);
    const cpuShare = (cpuSeconds(pid) - cpuBefore) / ((performance.now() - floodStarted) / 1000);

    expect(answers.every((a) => a.healthz === 200 && a.metrics === 200 && a.ms < ANSWER_WITHIN_MS)).toBe(
      true,
    );
    console.log(
      `WS_WORKER_THREADS=${threads}: peak ${peakDescriptors} of ${OPEN_FILES} descriptors; slowest probe ` +
        `${Math.round(Math.max(...duringBurst.map((a) => a.ms), ...answers.map((a) => a.ms)))} ms; ` +
        `${duringBurst.filter((a) => a.status !== 200).length} of ${BURST_PROBES} probes during the burst failed; ${hungUp} probes hung up and answered on a retry within their second; CPU ${cpuShare.toFixed(2)} of a core`,
    );
    expect(duringBurst.filter((a) => a.status !== 200 || a.ms >= ANSWER_WITHIN_MS)).toEqual([]);
    // The flood went past the limit, so the guard must have paused the listeners.
    expect(answers.some((a) => a.paused === 1)).toBe(true);
    expect(cpuShare).toBeLessThan(MAX_CPU_SHARE);

    // The flood ends: its connections close, the listeners reopen, new clients get in again.
    for (const socket of flood.splice(0)) socket.destroy();
    const deadline = performance.now() + 15_000;
    for (;;) {
      const metrics = await poll(`${admin}/metrics`, ANSWER_WITHIN_MS);
      if (readMetric(metrics.body, 'ws_listen_paused') === 0) break;
      if (performance.now() > deadline) throw new Error('listeners still paused 15 s after the flood ended');
      await pause(POLL_SPACING_MS);
    }
    const newcomer = await TestClient.connect(`ws://127.0.0.1:${port}/`);
    clients.push(newcomer);
    newcomer.subscribe(['level2'], ['BTC-USD']);
    await newcomer.nextOfType('snapshot');

    // The client connected before the flood was never cut off and missed nothing.
    const seen = streaming.messages.length;
    await streaming.next((m) => m.type === 'l2update' && streaming.messages.indexOf(m) >= seen);
    expect(sequenceGaps(streaming.messages)).toEqual([]);

    // Both transitions are logged, marked as the WebSocket listeners'.
    expect(gateway.stdout()).toContain(
      '"msg":"websocket listeners paused: open descriptors near the open-files limit"',
    );
    expect(gateway.stdout()).toContain('"msg":"websocket listeners reopened');
    gateway.child.kill('SIGTERM');
    expect(await gateway.exited()).toEqual({ code: 0, signal: null });
    gateway = undefined;
    await streaming.closed;
  }, 40_000);
});
