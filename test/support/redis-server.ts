import { type ChildProcess, spawn } from 'node:child_process';
import { once } from 'node:events';
import { mkdtempSync, rmSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

/** A real redis-server for a test: nothing persisted, nothing written to the working directory. */
export interface RedisProcess {
  readonly port: number;
  /** redis://127.0.0.1:<port> */
  readonly url: string;
  /** Kills the server (SIGKILL unless told) and waits until it has exited. No-op if it is not running. */
  kill(signal?: NodeJS.Signals): Promise<void>;
  /** Starts a fresh, empty server on the same port (killing the running one first, if any). */
  restart(): Promise<void>;
  /** Stops the server for good and removes its directory. */
  stop(): Promise<void>;
}

const READY_TIMEOUT_MS = 10_000;
const STOP_TIMEOUT_MS = 5_000;

/** Servers this test process started: none may outlive it, even when a test fails halfway. */
const running = new Set<ChildProcess>();
const directories = new Set<string>();

function killAll(): void {
  for (const child of running) child.kill('SIGKILL');
  running.clear();
  for (const dir of directories) rmSync(dir, { recursive: true, force: true });
  directories.clear();
}

process.once('exit', killAll);
// Vitest tears its fork workers down with SIGTERM, on which 'exit' handlers do not run.
process.once('SIGTERM', () => {
  killAll();
  // Nobody else handles it: terminate as SIGTERM would have without this handler.
  if (process.listenerCount('SIGTERM') === 0) process.kill(process.pid, 'SIGTERM');
});

export async function freePort(): Promise<number> {
  const server = createServer();
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  const address = server.address();
  server.close();
  await once(server, 'close');
  if (address === null || typeof address === 'string') throw new Error('could not read a free port');
  return address.port;
}

class StartError extends Error {
  constructor(
    message: string,
    readonly addressInUse: boolean,
  ) {
    super(message);
  }
}

/** How to start one server: its arguments after the port's, and the log line that says it is ready. */
export interface ServerMode {
  readonly args: readonly string[];
  readonly ready: string;
}

const STANDALONE: ServerMode = { args: [], ready: 'Ready to accept connections' };

/** Spawns redis-server on `port` and resolves once it logs that it is ready (`mode.ready`). */
export async function spawnRedis(
  port: number,
  dir: string,
  mode: ServerMode = STANDALONE,
): Promise<ChildProcess> {
  const child = spawn(
    'redis-server',
    [
      ...mode.args,
      '--port',
      String(port),
      '--bind',
      '127.0.0.1',
      '--save',
      '',
      '--appendonly',
      'no',
      '--daemonize',
      'no',
      // Anything it might write (an RDB on a replica sync, a crash log) lands here, not in cwd.
      '--dir',
      dir,
      '--logfile',
      '',
    ],
    { cwd: dir, stdio: ['ignore', 'pipe', 'pipe'] },
  );
  let output = '';
  let settled = false;
  try {
    await new Promise<void>((resolve, reject) => {
      const timer = setTimeout(
        () =>
          reject(
            new StartError(
              `redis-server did not become ready within ${READY_TIMEOUT_MS} ms:\n${output}`,
              false,
            ),
          ),
        READY_TIMEOUT_MS,
      );
      const done = (error?: Error) => {
        if (settled) return;
        settled = true;
        clearTimeout(timer);
        if (error) reject(error);
        else resolve();
      };
      child.once('error', (error: NodeJS.ErrnoException) => {
        done(
          error.code === 'ENOENT'
            ? new StartError('redis-server is not installed (.ci/run installs it)', false)
            : error,
        );
      });
      child.stdout!.on('data', (chunk) => {
        if (settled) return;
        output += chunk;
        if (output.includes(mode.ready)) done();
      });
      child.stderr!.on('data', (chunk) => {
        if (!settled) output += chunk;
      });
      child.once('exit', (code, signal) =>
        done(
          new StartError(
            `redis-server on port ${port} exited (${signal ?? code}) before it was ready:\n${output}`,
            /address already in use/i.test(output),
          ),
        ),
      );
    });
  } catch (error) {
    child.kill('SIGKILL');
    throw error;
  }
  running.add(child);
  child.once('exit', () => running.delete(child));
  return child;
}

async function waitForExit(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return;
  await once(child, 'exit');
}

/** Starts a real redis-server on a free port of 127.0.0.1 (or `options.port`), or another `mode` of it. */
export async function startRedis(options: { port?: number; mode?: ServerMode } = {}): Promise<RedisProcess> {
  const dir = mkdtempSync(join(tmpdir(), 'matchbook-redis-'));
  directories.add(dir);
  let port = options.port ?? 0;
  let child: ChildProcess | undefined;
  // A port picked free can be taken before redis-server binds it: pick another one.
  for (let attempt = 1; child === undefined; attempt++) {
    if (options.port === undefined) port = await freePort();
    try {
      child = await spawnRedis(port, dir, options.mode);
    } catch (error) {
      const retry =
        error instanceof StartError && error.addressInUse && options.port === undefined && attempt < 5;
      if (!retry) {
        directories.delete(dir);
        rmSync(dir, { recursive: true, force: true });
        throw error;
      }
    }
  }

  let current: ChildProcess | undefined = child;
  const kill = async (signal: NodeJS.Signals = 'SIGKILL') => {
    const target = current;
    current = undefined;
    if (!target) return;
    target.kill(signal);
    await waitForExit(target);
  };
  return {
    port,
    url: `redis://127.0.0.1:${port}`,
    kill,
    async restart() {
      await kill();
      current = await spawnRedis(port, dir, options.mode);
    },
    async stop() {
      const target = current;
      if (target) {
        const force = setTimeout(() => target.kill('SIGKILL'), STOP_TIMEOUT_MS);
        await kill('SIGTERM');
        clearTimeout(force);
      }
      directories.delete(dir);
      rmSync(dir, { recursive: true, force: true });
    },
  };
}
