import { type ChildProcess, fork } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import type {
  ClientConfig,
  ClientToParent,
  ConnectCommand,
  ConnectReport,
  MeasureCommand,
  ParentToClient,
  StreamReport,
} from './client-protocol.js';

/** The compiled child next to this module: dist/bench/fanout/load-client.js. */
const LOAD_CLIENT = fileURLToPath(new URL('./load-client.js', import.meta.url));

/** The parent's side of one fan-out load-client process (see client-protocol.ts). */
export class FanoutClient {
  private constructor(private readonly child: ChildProcess) {}

  /** `cpuProfileDir`: write a V8 CPU profile of the client there when it exits. */
  static start(config: ClientConfig, cpuProfileDir?: string): FanoutClient {
    const child = fork(LOAD_CLIENT, [], {
      stdio: ['ignore', 'inherit', 'inherit', 'ipc'],
      // Fewer scavenges: the client allocates little per message, but per TCP read it does.
      execArgv: [
        '--max-semi-space-size=32',
        ...(cpuProfileDir ? ['--cpu-prof', `--cpu-prof-dir=${cpuProfileDir}`] : []),
      ],
    });
    // If the benchmark itself dies, do not leave the client running.
    const killOnExit = () => child.kill('SIGKILL');
    process.once('exit', killOnExit);
    child.once('exit', () => process.off('exit', killOnExit));
    const client = new FanoutClient(child);
    client.send({ kind: 'start', config });
    return client;
  }

  connect(command: ConnectCommand): Promise<ConnectReport> {
    const reply = this.next(
      'connected',
      command.startAtEpochMs - Date.now() + command.readyTimeoutMs + 30_000,
    );
    this.send({ kind: 'connect', ...command });
    return reply.then((message) => message.report);
  }

  /** Resolves with the window's report, sent at its end + grace (a busy client may send it late). */
  measure(command: MeasureCommand): Promise<StreamReport> {
    const reply = this.next('report', command.toEpochMs - Date.now() + command.graceMs + 60_000);
    this.send({ kind: 'measure', ...command });
    return reply.then((message) => message.report);
  }

  /** Closes its connections and ends the process (killed if it has not exited within 5 s). */
  async stop(): Promise<void> {
    if (this.exited) return;
    const exited = new Promise<void>((resolve) => this.child.once('exit', () => resolve()));
    this.send({ kind: 'stop' });
    await Promise.race([exited, new Promise((resolve) => setTimeout(resolve, 5_000))]);
    this.kill();
  }

  kill(): void {
    if (!this.exited) this.child.kill('SIGKILL');
  }

  private get exited(): boolean {
    return this.child.exitCode !== null || this.child.signalCode !== null;
  }

  private send(message: ParentToClient): void {
    if (!this.exited) this.child.send(message);
  }

  private next<K extends ClientToParent['kind']>(
    kind: K,
    timeoutMs: number,
  ): Promise<Extract<ClientToParent, { kind: K }>> {
    const { child } = this;
    return new Promise((resolve, reject) => {
      const cleanup = () => {
        clearTimeout(timer);
        child.off('message', onMessage);
        child.off('exit', onExit);
      };
      const onMessage = (message: ClientToParent) => {
        if (message.kind !== kind) return;
        cleanup();
        resolve(message as Extract<ClientToParent, { kind: K }>);
      };
      const onExit = (code: number | null, signal: NodeJS.Signals | null) => {
        cleanup();
        reject(new Error(`load client exited (${signal ?? code}) while waiting for '${kind}'`));
      };
      const timer = setTimeout(() => {
        cleanup();
        reject(new Error(`load client: no '${kind}' within ${Math.round(timeoutMs)} ms`));
      }, timeoutMs);
      child.on('message', onMessage);
      child.on('exit', onExit);
    });
  }
}
