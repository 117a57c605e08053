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
  const started = startTracked('gateway', command, {
    HOST: '127.0.0.1',
    PORT: '0',
    ADMIN_PORT: '0',
    SIM_SEED: '7',
    ...RELAXED_LIMITS,
    ...env,
  });
  const listening = await started.outputLine('"msg":"listening"', 'listening');
  const { port, adminPort } = JSON.parse(listening) as { port: number; adminPort: number };
  return { ...started, port, adminPort };
}

/** A child process that none may outlive, its output collected, and a wait for a line of it. */
function startTracked(name: string, command: readonly string[], env: Record<string, string>) {
  const child = spawn(command[0]!, command.slice(1), {
    env: { PATH: process.env.PATH, ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  children.add(child);
  child.once('exit', () => children.delete(child));
  let out = '';
  let err = '';
  child.stdout!.on('data', (chunk) => {
    out += chunk;
  });
  child.stderr!.on('data', (chunk) => {
    err += chunk;
  });
  const exit = once(child, 'exit').then(([code, signal]) => ({ code, signal }));
  /** Resolves with the first stdout line containing `marker`; rejects if the child exits first. */
  const outputLine = (marker: string, what: string) =>
    new Promise<string>((resolve, reject) => {
      const look = () => {
        // Complete lines only: a chunk may end inside one.
        const line = out
          .split('\n')
          .slice(0, -1)
          .find((l) => l.includes(marker));
        if (line === undefined) return false;
        child.stdout!.off('data', look);
        resolve(line);
        return true;
      };
      if (!look()) child.stdout!.on('data', look);
      void exit.then(({ code }) => reject(new Error(`${name} exited (${code}) before ${what}: ${err}`)));
    });
  return { child, stdout: () => out, stderr: () => err, exited: () => exit, outputLine };
}

export interface Outcome {
  readonly code: number | null;
  readonly signal: NodeJS.Signals | null;
  readonly stdout: string;
  readonly stderr: string;
}

/** Runs a Node.js script (the built gateway by default) to completion, with its output. */
export async function runNode(args: readonly string[], env: Record<string, string>): Promise<Outcome> {
  const started = startTracked(String(args[0]), [process.execPath, ...args], env);
  const { code, signal } = await started.exited();
  return { code, signal, stdout: started.stdout(), stderr: started.stderr() };
}

/** Runs the built gateway to completion (for configuration errors). */
export function runGateway(env: Record<string, string>): Promise<Outcome> {
  return runNode([MAIN], { ADMIN_PORT: '0', ...env });
}

/** Kills every child still running, for tests whose child may hang (a start that never settles). */
export function killTracked(): void {
  for (const child of children) child.kill('SIGKILL');
}

export interface PublisherProcess {
  readonly child: ChildProcess;
  readonly stdout: () => string;
  exited(): Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
}

/** Runs `matchbook-gateway publish` as users do and resolves once it logs that it is publishing. */
export async function spawnPublisher(env: Record<string, string>): Promise<PublisherProcess> {
  const started = startTracked('publisher', [process.execPath, MAIN, 'publish'], {
    LOG_LEVEL: 'info',
    ...env,
  });
  await started.outputLine('"msg":"publishing"', 'publishing');
  return { child: started.child, stdout: started.stdout, exited: started.exited };
}
