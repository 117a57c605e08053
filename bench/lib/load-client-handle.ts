import { type ChildProcess, fork } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import type { ChildToParent, LoadClientConfig, LoadReport, ParentToChild } from './load-protocol.js';

/** The compiled child next to this module: dist/bench/lib/load-client.js. */
const LOAD_CLIENT = fileURLToPath(new URL('./load-client.js', import.meta.url));

type Ready = Extract<ChildToParent, { kind: 'ready' }>;

/** The parent's side of one load-client process (see load-protocol.ts for the timeline). */
export class LoadClientHandle {
  private constructor(
    private readonly child: ChildProcess,
    readonly ready: Ready,
  ) {}

  /** Forks a load client and resolves once all its connections are subscribed (or it gave up). */
  static async start(config: LoadClientConfig): Promise<LoadClientHandle> {
    // A larger young generation: the client allocates a string per message; fewer scavenges saved
    // a few percent of its CPU per message when measured.
    const child = fork(LOAD_CLIENT, [], {
      stdio: ['ignore', 'inherit', 'inherit', 'ipc'],
      execArgv: ['--max-semi-space-size=32'],
    });
    const ready = nextMessage(child, 'ready', config.readyTimeoutMs + 10_000);
    send(child, { kind: 'start', config });
    try {
      return new LoadClientHandle(child, await ready);
    } catch (error) {
      child.kill('SIGKILL');
      throw error;
    }
  }

  /**
   * Ends the warm-up and starts a window of `durationMs`: counters restart; stalled connections (if
   * any) connect, subscribe and stop reading. Resolves with the client's report when the window has
   * ended; a saturated client may send it well after `durationMs`, hence the generous `timeoutMs`.
   */
  measure(durationMs: number, timeoutMs = durationMs + 60_000): Promise<LoadReport> {
    const report = nextMessage(this.child, 'report', timeoutMs);
    send(this.child, { kind: 'measure', durationMs });
    return report.then((message) => message.report);
  }

  /** Closes the client's connections and ends its process (killed if it has not exited within 2 s). */
  async stop(): Promise<void> {
    if (this.child.exitCode !== null || this.child.signalCode !== null) return;
    const exited = new Promise<void>((resolve) => this.child.once('exit', () => resolve()));
    send(this.child, { kind: 'stop' });
    await Promise.race([exited, new Promise((resolve) => setTimeout(resolve, 2_000))]);
    this.kill();
  }

  kill(): void {
    if (this.child.exitCode === null && this.child.signalCode === null) this.child.kill('SIGKILL');
  }
}

function send(child: ChildProcess, message: ParentToChild): void {
  child.send(message);
}

function nextMessage<K extends ChildToParent['kind']>(
  child: ChildProcess,
  kind: K,
  timeoutMs: number,
): Promise<Extract<ChildToParent, { kind: K }>> {
  return new Promise((resolve, reject) => {
    const cleanup = () => {
      clearTimeout(timer);
      child.off('message', onMessage);
      child.off('exit', onExit);
    };
    const onMessage = (message: ChildToParent) => {
      if (message.kind !== kind) return;
      cleanup();
      resolve(message as Extract<ChildToParent, { kind: K }>);
    };
    const onExit = (code: number | null, signal: NodeJS.Signals | null) => {
      cleanup();
      reject(new Error(`load client exited (${signal ?? code}) while waiting for '${kind}'`));
    };
    const timer = setTimeout(() => {
      cleanup();
      reject(new Error(`load client: no '${kind}' within ${timeoutMs} ms`));
    }, timeoutMs);
    child.on('message', onMessage);
    child.on('exit', onExit);
  });
}
