import { type ChildProcess, spawn } from 'node:child_process';
import { once } from 'node:events';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { freePort } from './redis-server.js';

/**
 * A real Prometheus server (Debian's `prometheus`, which .ci/run installs) for a test: loopback, a
 * free port, its TSDB in a temporary directory, scraping the given targets every second.
 */
export interface PrometheusProcess {
  readonly url: string;
  stop(): Promise<void>;
}

const READY_TIMEOUT_MS = 30_000;
const STOP_TIMEOUT_MS = 10_000;

const running = new Set<ChildProcess>();
process.once('exit', () => {
  for (const child of running) child.kill('SIGKILL');
});

class StartError extends Error {
  constructor(
    message: string,
    readonly addressInUse: boolean,
  ) {
    super(message);
  }
}

function spawnPrometheus(dir: string, port: number): Promise<ChildProcess> {
  const child = spawn(
    'prometheus',
    [
      `--config.file=${join(dir, 'prometheus.yml')}`,
      `--storage.tsdb.path=${join(dir, 'data')}`,
      `--web.listen-address=127.0.0.1:${port}`,
      '--log.level=info',
    ],
    { cwd: dir, stdio: ['ignore', 'ignore', 'pipe'] },
  );
  let output = '';
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => {
      child.kill('SIGKILL');
      reject(new StartError(`prometheus not ready within ${READY_TIMEOUT_MS} ms:\n${output}`, false));
    }, READY_TIMEOUT_MS);
    child.once('error', (error: NodeJS.ErrnoException) => {
      clearTimeout(timer);
      reject(
        error.code === 'ENOENT' ? new Error('prometheus is not installed (.ci/run installs it)') : error,
      );
    });
    child.once('exit', (code, signal) => {
      clearTimeout(timer);
      reject(
        new StartError(
          `prometheus exited (${signal ?? code}) before it was ready:\n${output}`,
          /address already in use/.test(output),
        ),
      );
    });
    child.stderr!.on('data', (chunk) => {
      output += chunk;
      if (output.includes('Server is ready to receive web requests')) {
        clearTimeout(timer);
        running.add(child);
        child.once('exit', () => running.delete(child));
        resolve(child);
      }
    });
  });
}

export async function startPrometheus(targets: readonly string[], job = 'api'): Promise<PrometheusProcess> {
  const dir = mkdtempSync(join(tmpdir(), 'matchbook-prometheus-'));
  writeFileSync(
    join(dir, 'prometheus.yml'),
    JSON.stringify({
      global: { scrape_interval: '1s', evaluation_interval: '1s' },
      scrape_configs: [{ job_name: job, static_configs: [{ targets }] }],
    }),
  );
  let child: ChildProcess | undefined;
  let port = 0;
  // A port picked free can be taken before Prometheus binds it: pick another one.
  for (let attempt = 1; child === undefined; attempt++) {
    port = await freePort();
    try {
      child = await spawnPrometheus(dir, port);
    } catch (error) {
      if (!(error instanceof StartError && error.addressInUse && attempt < 5)) {
        rmSync(dir, { recursive: true, force: true });
        throw error;
      }
    }
  }
  const server = child;
  return {
    url: `http://127.0.0.1:${port}`,
    async stop() {
      if (server.exitCode === null && server.signalCode === null) {
        const force = setTimeout(() => server.kill('SIGKILL'), STOP_TIMEOUT_MS);
        server.kill('SIGTERM');
        await once(server, 'exit');
        clearTimeout(force);
      }
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

/** Polls a Prometheus API call until `accept` returns a value, within a bounded deadline. */
export async function pollApi<T>(
  url: string,
  accept: (body: unknown) => T | undefined,
  deadlineMs = 30_000,
): Promise<T> {
  const deadline = Date.now() + deadlineMs;
  let last: unknown;
  for (;;) {
    last = await (await fetch(url)).json();
    const value = accept(last);
    if (value !== undefined) return value;
    if (Date.now() > deadline)
      throw new Error(`${url}: no acceptable answer within ${deadlineMs} ms; last ${JSON.stringify(last)}`);
    // The API is polled, at the scrape interval's pace; nothing waits on this timer for correctness.
    await new Promise((resolve) => setTimeout(resolve, 250));
  }
}
