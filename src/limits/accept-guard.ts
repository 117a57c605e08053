import type { DescriptorBudget } from './descriptor-budget.js';

/** What the accept guard drives, declared here: the listeners of every thread, the held reserve, metrics and logs. */
export interface AcceptGuardDeps {
  /** The process's open descriptors now (every thread's). */
  count(): number;
  /** Closes every uWS listen socket (established connections stay). */
  pauseListening(): void;
  /** Reopens them. */
  resumeListening(): void;
  readonly reserve: { fill(): void; release(): void };
  /** After every reading: the count, and whether the listeners are paused. */
  observed(openDescriptors: number, paused: boolean): void;
  /** The listeners were just paused or resumed at this count. */
  changed(paused: boolean, openDescriptors: number): void;
}

/**
 * The share of the main thread the readings may take: one that costs more (listing a large
 * /proc/self/fd on an old kernel) spaces the next one out.
 */
const MAX_DUTY = 0.01;

/**
 * Keeps the process away from its open-files limit, where uSockets would spin on a failing
 * accept(): counts the descriptors from the OS side on a short timer (so raw TCP connections that
 * never send a request count too), closes every listen socket at `pauseAt` and gives the reserve
 * back, and reopens them once the count is below `resumeAt`.
 */
export class AcceptGuard {
  private paused = false;
  private timer: NodeJS.Timeout | undefined;

  constructor(
    private readonly budget: Pick<DescriptorBudget, 'pauseAt' | 'resumeAt' | 'watchAt'>,
    private readonly deps: AcceptGuardDeps,
  ) {}

  get isPaused(): boolean {
    return this.paused;
  }

  /**
   * Reads every `intervalMs`, and every `nearIntervalMs` while accepting with the count at or over
   * `watchAt` (a flood can open a reserve's worth of descriptors in one long interval); less often
   * if a reading costs more than MAX_DUTY of that.
   */
  start(intervalMs: number, nearIntervalMs: number): void {
    this.deps.reserve.fill();
    const tick = () => {
      const started = performance.now();
      const open = this.check();
      const interval = !this.paused && open >= this.budget.watchAt ? nearIntervalMs : intervalMs;
      this.timer = setTimeout(tick, Math.max(interval, (performance.now() - started) / MAX_DUTY));
      this.timer.unref();
    };
    tick();
  }

  stop(): void {
    clearTimeout(this.timer);
    this.deps.reserve.release();
  }

  /** One reading, and the pause or resume it calls for; returns the count. */
  check(): number {
    const open = this.deps.count();
    if (!this.paused && open >= this.budget.pauseAt) {
      this.paused = true;
      this.deps.pauseListening();
      this.deps.reserve.release();
      this.deps.changed(true, open);
    } else if (this.paused && open < this.budget.resumeAt) {
      this.deps.reserve.fill();
      this.paused = false;
      this.deps.resumeListening();
      this.deps.changed(false, open);
    }
    this.deps.observed(open, this.paused);
    return open;
  }
}
