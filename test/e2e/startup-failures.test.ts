import { once } from 'node:events';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { createServer, type Server } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, afterEach, describe, expect, it } from 'vitest';
import { killTracked, MAIN, type Outcome, runNode } from '../support/process.js';

function run(args: readonly string[], env: Record<string, string>): Promise<Outcome> {
  return runNode(args, { HOST: '127.0.0.1', LOG_LEVEL: 'info', ...env });
}

const ABORTED = /uv_loop_close|Assertion|Aborted|core dumped/;

let blocker: Server | undefined;
afterEach(async () => {
  killTracked();
  if (blocker) {
    blocker.close();
    await once(blocker, 'close');
  }
  blocker = undefined;
});

/** A port held by a plain listener without SO_REUSEPORT: uSockets cannot bind it. */
async function takenPort(): Promise<number> {
  blocker = createServer();
  blocker.listen(0, '127.0.0.1');
  await once(blocker, 'listening');
  return (blocker.address() as { port: number }).port;
}

/**
 * The built gateway started through startGateway with a worker startup fault (the in-process test
 * hook), failing the way main.ts does: the reason on stderr, exit 1.
 */
const START_WITH_FAULT = `
const dist = (path) => new URL(path, ${JSON.stringify(new URL('../../dist/src/', import.meta.url).href)}).href;
const { loadConfig } = await import(dist('config/config.js'));
const { startGateway } = await import(dist('gateway.js'));
const { createLogger } = await import(dist('logging/logger.js'));
const { nativeUws } = await import(dist('server/uws.js'));
const result = loadConfig(process.env);
if (!result.ok) throw new Error(result.errors.join('; '));
const fault = { worker: Number(process.env.FAULT_WORKER), fault: process.env.FAULT };
try {
  const gateway = await startGateway(result.config, createLogger('info'), nativeUws(), undefined, { workerStartupFault: fault });
  process.stdout.write('unexpectedly started\\n');
  await gateway.close();
} catch (error) {
  process.stderr.write('failed to start: ' + error.message + '\\n');
  process.exit(1);
}
`;

// A file, not --eval: worker threads inherit the process's execArgv, and --input-type breaks them.
const scriptDir = mkdtempSync(join(tmpdir(), 'matchbook-startup-'));
const startWithFault = join(scriptDir, 'start-with-fault.mjs');
writeFileSync(startWithFault, START_WITH_FAULT);
afterAll(() => rmSync(scriptDir, { recursive: true, force: true }));

describe('a startup that fails settles, closes what it started and exits 1 with the reason', () => {
  it.each([0, 2])(
    'the port is taken (WS_WORKER_THREADS=%i): exit 1 naming the address, no stack',
    async (threads) => {
      const port = await takenPort();
      const outcome = await run([MAIN], { PORT: String(port), WS_WORKER_THREADS: String(threads) });
      expect(outcome.signal).toBeNull();
      expect(outcome.code).toBe(1);
      expect(outcome.stderr).toBe(
        `matchbook-gateway: failed to start: ${threads === 0 ? '' : 'worker 0: '}cannot listen on 127.0.0.1:${port} (address in use or not permitted)\n`,
      );
      expect(outcome.stdout).toContain('"msg":"failed to start"');
    },
  );

  it.each([
    ['exit', 'worker 1 exited (code 1) before listening: Error: injected startup fault (test hook)'],
    ['listen-failed', 'worker 1: injected startup fault (test hook)'],
  ])(
    'worker 1 of 3 fails to start (%s) after worker 0 listens: no hang, no native abort',
    async (fault, reason) => {
      const outcome = await run([startWithFault], {
        PORT: '0',
        WS_WORKER_THREADS: '3',
        FAULT_WORKER: '1',
        FAULT: fault,
      });
      expect(outcome.stderr).not.toMatch(ABORTED);
      expect(outcome).toMatchObject({ code: 1, signal: null });
      expect(outcome.stderr).toContain(`failed to start: ${reason}`);
      expect(outcome.stdout).not.toContain('unexpectedly started');
      // Worker 2 was never started and worker 1's failure was not "replaced".
      expect(outcome.stdout).not.toContain('"worker":2');
      expect(outcome.stdout).not.toContain('replacement worker');
    },
  );
});
