import { type ChildProcess, spawn } from 'node:child_process';
import { once } from 'node:events';
import { fileURLToPath } from 'node:url';
import { GATEWAY_NODE_OPTIONS } from '../../src/node-options.js';
import { RELAXED_LIMITS } from './gateway.js';

export const MAIN = fileURLToPath(new URL('../../dist/src/main.js', import.meta.url));

export interface GatewayProcess {
  readonly child: ChildProcess;
  readonly port: number;
  readonly adminPort: number;
  readonly stdout: () => string;
  readonly stderr: () => string;
  exited(): Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
}

/** Gateways this test process started: none may outlive it, even when a test fails halfway. */
const children = new Set<ChildProcess>();
process.once('exit', () => {
  for (const child of children) child.kill('SIGKILL');
});

/**
 * Runs the built gateway as users do and waits for its "listening" log line to learn the ports.
 * `wrapper` is a command that execs the rest (e.g. `prlimit --nofile=512:512 --`), so the child's
 * pid stays the gateway's.
 */
export async function spawnGateway(
  env: Record<string, string> = {},
  wrapper: readonly string[] = [],
): Promise<GatewayProcess> {
  const command = [...wrapper, process.execPath, ...GATEWAY_NODE_OPTIONS, MAIN];
  const child = spawn(command[0]!, command.slice(1), {
    env: {
      PATH: process.env.PATH,
      HOST: '127.0.0.1',
      PORT: '0',
      ADMIN_PORT: '0',
      SIM_SEED: '7',
      ...RELAXED_LIMITS,
      ...env,
    },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  children.add(child);
  child.once('exit', () => children.delete(child));
  let out = '';
  let err = '';
  child.stderr!.on('data', (chunk) => {
    err += chunk;
  });
  const exit = once(child, 'exit').then(([code, signal]) => ({ code, signal }));
  const { port, adminPort } = await new Promise<{ port: number; adminPort: number }>((resolve, reject) => {
    child.stdout!.on('data', (chunk) => {
      out += chunk;
      for (const line of out.split('\n')) {
        if (!line.includes('"msg":"listening"')) continue;
        resolve(JSON.parse(line) as { port: number; adminPort: number });
      }
    });
    void exit.then(({ code }) => reject(new Error(`gateway exited (${code}) before listening: ${err}`)));
  });
  return { child, port, adminPort, stdout: () => out, stderr: () => err, exited: () => exit };
}

/** Runs the built gateway to completion (for configuration errors). */
export async function runGateway(
  env: Record<string, string>,
): Promise<{ code: number | null; stderr: string }> {
  const child = spawn(process.execPath, [MAIN], {
    env: { PATH: process.env.PATH, ADMIN_PORT: '0', ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let stderr = '';
  child.stderr!.on('data', (chunk) => {
    stderr += chunk;
  });
  const [code] = await once(child, 'exit');
  return { code, stderr };
}

export interface PublisherProcess {
  readonly child: ChildProcess;
  readonly stdout: () => string;
  exited(): Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
}

/** Runs `matchbook-gateway publish` as users do and resolves once it logs that it is publishing. */
export async function spawnPublisher(env: Record<string, string>): Promise<PublisherProcess> {
  const child = spawn(process.execPath, [MAIN, 'publish'], {
    env: { PATH: process.env.PATH, LOG_LEVEL: 'info', ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  children.add(child);
  child.once('exit', () => children.delete(child));
  let out = '';
  let err = '';
  child.stderr!.on('data', (chunk) => {
    err += chunk;
  });
  const exit = once(child, 'exit').then(([code, signal]) => ({ code, signal }));
  await new Promise<void>((resolve, reject) => {
    child.stdout!.on('data', (chunk) => {
      out += chunk;
      if (out.includes('"msg":"publishing"')) resolve();
    });
    void exit.then(({ code }) => reject(new Error(`publisher exited (${code}) before publishing: ${err}`)));
  });
  return { child, stdout: () => out, exited: () => exit };
}
