import type { Logger } from 'pino';

/**
 * Logs repeated events at most once per interval per key, with the number suppressed since the
 * last line, so a flood of bad input costs one log line per interval instead of one per event.
 * Keys must come from a small fixed set (reasons), never from client-controlled text.
 */
export class SampledLog {
  private readonly lastLogged = new Map<string, { at: number; suppressed: number }>();

  constructor(
    private readonly logger: Logger,
    private readonly intervalMs = 10_000,
  ) {}

  warn(key: string, fields: Record<string, unknown>, message: string): void {
    this.log('warn', key, fields, message);
  }

  info(key: string, fields: Record<string, unknown>, message: string): void {
    this.log('info', key, fields, message);
  }

  private log(level: 'warn' | 'info', key: string, fields: Record<string, unknown>, message: string): void {
    const now = performance.now();
    const entry = this.lastLogged.get(key);
    if (entry && now - entry.at < this.intervalMs) {
      entry.suppressed++;
      return;
    }
    this.logger[level]({ ...fields, reason: key, suppressed: entry?.suppressed ?? 0 }, message);
    this.lastLogged.set(key, { at: now, suppressed: 0 });
  }
}
