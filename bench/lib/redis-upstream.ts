/**
 * The Redis upstream for benchmarks: a throwaway redis-server on a free port and the gateway's own
 * publisher (`node dist/src/main.js publish`) writing into it, plus per-process CPU and memory read
 * from /proc (Linux; NaN elsewhere) for processes that have no /metrics.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { once } from 'node:events';
import { mkdirSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { Redis } from 'ioredis';

/** The built gateway's CLI (the publisher is its `publish` command). */
const MAIN = fileURLToPath(new URL('../../src/main.js', import.meta.url));
const REDIS_SERVER = '/usr/bin/redis-server';
/** Another Redis may run there; a benchmark never touches it. */
const RESERVED_PORT = 6379;
const READY_TIMEOUT_MS = 10_000;
const STOP_TIMEOUT_MS = 5_000;
const OUTPUT_TAIL_CHARS = 8_192;
/** Linux USER_HZ: /proc/<pid>/stat counts CPU time in these ticks (100 on every mainstream kernel). */
const CLOCK_TICKS_PER_SECOND = 100;

// --- /proc --------------------------------------------------------------------------------------

/** user + system CPU seconds of one process (every thread), from /proc/<pid>/stat; NaN if unreadable. */
export function processCpuSeconds(pid: number): number {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    // The command name (field 2) is in parentheses and may contain spaces: count from after it.
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    // fields[0] is field 3 (state): utime is field 14, stime field 15.
    return (Number(fields[11]) + Number(fields[12])) / CLOCK_TICKS_PER_SECOND;
  } catch {
    return Number.NaN;
  }
}

/** Current (VmRSS) and peak (VmHWM) resident set of one process, in bytes; NaN if unreadable. */
export function processMemory(pid: number): { readonly rssBytes: number; readonly peakRssBytes: number } {
  try {
    const status = readFileSync(`/proc/${pid}/status`, 'utf8');
    const kb = (field: string) => {
      const match = new RegExp(`^${field}:\\s+(\\d+) kB`, 'm').exec(status);
      return match ? Number(match[1]) * 1024 : Number.NaN;
    };
    return { rssBytes: kb('VmRSS'), peakRssBytes: kb('VmHWM') };
  } catch {
    return { rssBytes: Number.NaN, peakRssBytes: Number.NaN };
  }
}

// --- redis-server -------------------------------------------------------------------------------

async function freePort(): Promise<number> {
  for (;;) {
    const server = createServer();
    server.listen(0, '127.0.0.1');
    await once(server, 'listening');
    const address = server.address();
    server.close();
    await once(server, 'close');
    if (address === null || typeof address === 'string') throw new Error('could not read a free port');
    if (address.port !== RESERVED_PORT) return address.port;
  }
}

/** INFO as key → value (as Redis wrote it), every section flattened. */
export type RedisInfo = Readonly<Record<string, string>>;

export function parseRedisInfo(text: string): RedisInfo {
  const info: Record<string, string> = {};
  for (const line of text.split(/\r?\n/)) {
    if (line === '' || line.startsWith('#')) continue;
    const colon = line.indexOf(':');
    if (colon > 0) info[line.slice(0, colon)] = line.slice(colon + 1);
  }
  return info;
}

export const infoNumber = (info: RedisInfo, key: string): number =>
  info[key] === undefined ? Number.NaN : Number(info[key]);

/** `cmdstat_xadd:calls=12,usec=345,usec_per_call=...` → { xadd: { calls: 12, usec: 345 } }. */
export function commandStats(info: RedisInfo): Record<string, { calls: number; usec: number }> {
  const out: Record<string, { calls: number; usec: number }> = {};
  for (const [key, value] of Object.entries(info)) {
    if (!key.startsWith('cmdstat_')) continue;
    const fields = Object.fromEntries(value.split(',').map((kv) => kv.split('=') as [string, string]));
    out[key.slice('cmdstat_'.length)] = { calls: Number(fields.calls), usec: Number(fields.usec) };
  }
  return out;
}

/**
 * How a redis-server keeps its data: `none` (nothing persisted, the default), or `aof` (an
 * append-only file fsynced every write, so a server killed with SIGKILL and started again on the
 * same directory comes back with its data).
 */
export type RedisPersistence = 'none' | 'aof';

/** A redis-server of our own: its files in a temporary directory, never port 6379. */
export class RedisServer {
  private constructor(
    private readonly child: ChildProcess,
    readonly port: number,
    private readonly admin: Redis,
    private readonly dir: string,
    private readonly persistence: RedisPersistence,
    private readonly removeDir: () => void,
  ) {}

  static async start(persistence: RedisPersistence = 'none'): Promise<RedisServer> {
    const dir = mkdtempSync(join(tmpdir(), 'matchbook-bench-redis-'));
    // If the benchmark dies before stop(), leave no directory behind (the server is killed on exit too).
    const removeDir = () => rmSync(dir, { recursive: true, force: true });
    process.once('exit', removeDir);
    // A port picked free can be taken before redis-server binds it: pick another one.
    for (let attempt = 1; ; attempt++) {
      try {
        return await RedisServer.launch(await freePort(), dir, persistence, removeDir);
      } catch (error) {
        if (attempt >= 5 || !/address already in use/i.test(String(error))) {
          process.off('exit', removeDir);
          removeDir();
          throw error;
        }
      }
    }
  }

  private static async launch(
    port: number,
    dir: string,
    persistence: RedisPersistence,
    removeDir: () => void,
  ): Promise<RedisServer> {
    let child: ChildProcess | undefined;
    try {
      child = await spawnRedis(port, dir, persistence);
      const admin = new Redis({ host: '127.0.0.1', port, protocol: 2, lazyConnect: true });
      admin.on('error', () => {}); // surfaces through the command that fails
      await admin.connect();
      return new RedisServer(child, port, admin, dir, persistence, removeDir);
    } catch (error) {
      child?.kill('SIGKILL');
      throw error;
    }
  }

  get url(): string {
    return `redis://127.0.0.1:${this.port}`;
  }

  get pid(): number {
    return this.child.pid!;
  }

  /** INFO (the default sections: server, memory, stats, cpu, keyspace, …) plus commandstats. */
  async info(): Promise<RedisInfo> {
    const [main, commands] = await Promise.all([this.admin.info(), this.admin.info('commandstats')]);
    return { ...parseRedisInfo(main), ...parseRedisInfo(commands) };
  }

  /**
   * A crash and a restart on the same port: SIGKILL, `downMs` with no server, then a new server on
   * the same directory. With `keepData` false its files are deleted first, as if the data had been
   * lost with the machine. Returns the new server; this object must not be used afterwards.
   */
  async crashAndRestart(keepData: boolean, downMs: number): Promise<RedisServer> {
    this.admin.disconnect();
    await this.kill();
    await new Promise((resolve) => setTimeout(resolve, downMs));
    if (!keepData) {
      rmSync(this.dir, { recursive: true, force: true });
      mkdirSync(this.dir);
    }
    return RedisServer.launch(this.port, this.dir, this.persistence, this.removeDir);
  }

  async stop(): Promise<void> {
    this.admin.disconnect();
    if (this.child.exitCode === null && this.child.signalCode === null) {
      const force = setTimeout(() => this.child.kill('SIGKILL'), STOP_TIMEOUT_MS);
      this.child.kill('SIGTERM');
      await once(this.child, 'exit');
      clearTimeout(force);
    }
    process.off('exit', this.removeDir);
    this.removeDir();
  }

  private async kill(): Promise<void> {
    if (this.child.exitCode !== null || this.child.signalCode !== null) return;
    const exited = once(this.child, 'exit');
    this.child.kill('SIGKILL');
    await exited;
  }
}

async function spawnRedis(port: number, dir: string, persistence: RedisPersistence): Promise<ChildProcess> {
  const appendOnly =
    persistence === 'aof' ? ['--appendonly', 'yes', '--appendfsync', 'always'] : ['--appendonly', 'no'];
  const child = spawn(
    REDIS_SERVER,
    [
      '--port',
      String(port),
      '--bind',
      '127.0.0.1',
      '--save',
      '',
      ...appendOnly,
      '--daemonize',
      'no',
      '--dir',
      dir,
      '--logfile',
      '',
    ],
    { cwd: dir, stdio: ['ignore', 'pipe', 'pipe'] },
  );
  const killOnExit = () => child.kill('SIGKILL');
  process.once('exit', killOnExit);
  child.once('exit', () => process.off('exit', killOnExit));
  let output = '';
  try {
    await new Promise<void>((resolve, reject) => {
      const timer = setTimeout(
        () => reject(new Error(`redis-server not ready within ${READY_TIMEOUT_MS} ms:\n${output}`)),
        READY_TIMEOUT_MS,
      );
      const done = (error?: Error) => {
        clearTimeout(timer);
        if (error) reject(error);
        else resolve();
      };
      child.once('error', (error) => done(error));
      child.stdout!.on('data', (chunk: Buffer) => {
        output = (output + chunk.toString()).slice(-OUTPUT_TAIL_CHARS);
        if (output.includes('Ready to accept connections')) done();
      });
      child.stderr!.on('data', (chunk: Buffer) => {
        output = (output + chunk.toString()).slice(-OUTPUT_TAIL_CHARS);
      });
      child.once('exit', (code, signal) =>
        done(new Error(`redis-server on port ${port} exited (${signal ?? code}):\n${output}`)),
      );
    });
  } catch (error) {
    child.kill('SIGKILL');
    throw error;
  }
  // Keep draining its output so a chatty server never blocks on a full pipe.
  child.stdout!.resume();
  child.stderr!.resume();
  return child;
}

// --- the publisher ------------------------------------------------------------------------------

/** `node dist/src/main.js publish`, started as an operator starts it. */
export class PublisherProcess {
  private constructor(
    private readonly child: ChildProcess,
    private readonly output: { text: string; warnings: number },
  ) {}

  /**
   * Starts the publisher with a minimal environment (PATH, LOG_LEVEL=info, then `env`) and resolves
   * once it logs "publishing" (its first snapshots are written by then).
   */
  static async start(env: Readonly<Record<string, string>>, timeoutMs = 20_000): Promise<PublisherProcess> {
    const child = spawn(process.execPath, [MAIN, 'publish'], {
      env: { PATH: process.env.PATH ?? '', LOG_LEVEL: 'info', ...env },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    const killOnExit = () => child.kill('SIGKILL');
    process.once('exit', killOnExit);
    child.once('exit', () => process.off('exit', killOnExit));
    const output = { text: '', warnings: 0 };
    let pending = '';
    const ready = new Promise<void>((resolve, reject) => {
      child.stdout!.on('data', (chunk: Buffer) => {
        output.text = (output.text + chunk.toString()).slice(-OUTPUT_TAIL_CHARS);
        pending += chunk.toString();
        const lines = pending.split('\n');
        pending = lines.pop()!;
        for (const line of lines) {
          // pino level 40 = warn ("redis writes failing", "streams may be trimmed …").
          if (line.includes('"level":40') || line.includes('"level":50')) output.warnings++;
          if (line.includes('"msg":"publishing"')) resolve();
        }
      });
      child.stderr!.on('data', (chunk: Buffer) => {
        output.text = (output.text + chunk.toString()).slice(-OUTPUT_TAIL_CHARS);
      });
      child.once('exit', (code, signal) =>
        reject(new Error(`publisher exited (${signal ?? code}) before publishing:\n${output.text}`)),
      );
      setTimeout(
        () => reject(new Error(`publisher not publishing within ${timeoutMs} ms`)),
        timeoutMs,
      ).unref();
    });
    try {
      await ready;
    } catch (error) {
      child.kill('SIGKILL');
      throw error;
    }
    return new PublisherProcess(child, output);
  }

  get pid(): number {
    return this.child.pid!;
  }

  /** Warning and error lines it logged so far (failed writes, trimming risk). */
  get warnings(): number {
    return this.output.warnings;
  }

  get outputTail(): string {
    return this.output.text;
  }

  /**
   * SIGTERM (it lets its last writes land), or `how` (SIGKILL: a crash); SIGKILL if it has not
   * exited within `timeoutMs`.
   */
  async stop(
    timeoutMs = 5_000,
    how: NodeJS.Signals = 'SIGTERM',
  ): Promise<{ code: number | null; signal: NodeJS.Signals | null }> {
    const { exitCode, signalCode } = this.child;
    if (exitCode !== null || signalCode !== null) return { code: exitCode, signal: signalCode };
    const exited = once(this.child, 'exit') as Promise<[number | null, NodeJS.Signals | null]>;
    this.child.kill(how);
    const timer = setTimeout(() => this.child.kill('SIGKILL'), timeoutMs);
    const [code, signal] = await exited;
    clearTimeout(timer);
    return { code, signal };
  }
}
