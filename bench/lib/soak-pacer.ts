/** Starts a task every `everyMs`, at most `maxInFlight` at once (a start that would exceed it is skipped and counted). */
export class Pacer {
  started = 0;
  skipped = 0;
  /** Tasks that threw: a bug of the soak itself, never the gateway's behaviour. */
  failed = 0;
  lastFailure: string | undefined;
  private timer: NodeJS.Timeout | undefined;
  private markStopped: () => void = () => {};
  /** Resolves when stop() is called: a task that waits may race it to end early. */
  readonly stopped = new Promise<void>((resolve) => {
    this.markStopped = resolve;
  });
  private readonly inFlight = new Set<Promise<void>>();

  constructor(
    private readonly everyMs: number,
    private readonly maxInFlight: number,
    private readonly task: () => Promise<void>,
  ) {}

  start(): void {
    this.timer = setInterval(() => this.tick(), this.everyMs);
  }

  get running(): number {
    return this.inFlight.size;
  }

  /** Starts no more tasks and resolves when those in flight have ended. */
  async stop(): Promise<void> {
    clearInterval(this.timer);
    this.markStopped();
    await Promise.all(this.inFlight);
  }

  private tick(): void {
    if (this.inFlight.size >= this.maxInFlight) {
      this.skipped++;
      return;
    }
    this.started++;
    const run: Promise<void> = this.task()
      .catch((error: unknown) => {
        this.failed++;
        this.lastFailure = String(error);
      })
      .finally(() => this.inFlight.delete(run));
    this.inFlight.add(run);
  }
}
