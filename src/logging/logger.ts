import { type Logger, pino } from 'pino';

/**
 * JSON logs to stdout. Writes are synchronous on fd 1, so lines from worker threads and the main
 * thread interleave whole and nothing is lost when the process exits; nothing logs per message.
 */
export function createLogger(level: string, bindings: Record<string, unknown> = {}): Logger {
  return pino(
    { level, base: { service: 'matchbook-gateway', ...bindings }, timestamp: pino.stdTimeFunctions.isoTime },
    pino.destination({ dest: 1, sync: true }),
  );
}
