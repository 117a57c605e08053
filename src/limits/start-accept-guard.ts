import type { Logger } from 'pino';
import { SampledLog } from '../logging/sampled-log.js';
import type { GatewayMetrics } from '../metrics/metrics.js';
import { AcceptGuard } from './accept-guard.js';
import type { DescriptorBudget } from './descriptor-budget.js';
import { DescriptorReserve, openDescriptorCounter } from './open-descriptors.js';

/** Every thread's uWS listen sockets, as the accept guard needs them. */
export interface ListenSockets {
  pauseListening(): void;
  resumeListening(): void;
  /**
   * True while this thread's listen socket could not be reopened and is being retried (worker
   * threads report theirs in their own ws_listen_paused, summed with this thread's).
   */
  reopenFailing(): boolean;
}

/**
 * How often the accept guard counts descriptors: a flood can open thousands of connections per
 * second. stat() of /proc/self/fd costs one system call; where the directory must be listed, the
 * guard spaces its readings by their cost.
 */
const GUARD_INTERVAL_MS = 20;
/**
 * From the watch point up to the pause point: a flood arriving faster than one accept queue per
 * 20 ms (seen here) would otherwise pass the reserve between two readings.
 */
const NEAR_INTERVAL_MS = 1;
/**
 * Descriptors held on /dev/null while accepting, handed back when the guard pauses
 * (DescriptorReserve): for the admin listener, Redis and logs should the count be read late (an
 * old kernel's spaced readings).
 */
const HELD_RESERVE = 32;

/**
 * The accept guard, where the open-files limit is known and /proc counts descriptors (Linux);
 * elsewhere none, which is said once at startup.
 */
export function startAcceptGuard(
  budget: DescriptorBudget | undefined,
  maxConnections: number,
  listeners: ListenSockets,
  metrics: GatewayMetrics,
  logger: Logger,
): AcceptGuard | undefined {
  const count = openDescriptorCounter();
  if (!budget || !count) {
    logger.warn(
      'accept guard off: the open-files limit or the count of open descriptors is unknown (no /proc); WS_MAX_CONNECTIONS is taken as given',
    );
    return undefined;
  }
  const transitions = new SampledLog(logger);
  const guard = new AcceptGuard(budget, {
    count,
    pauseListening: () => listeners.pauseListening(),
    resumeListening: () => listeners.resumeListening(),
    reserve: new DescriptorReserve(HELD_RESERVE),
    observed: (open, paused) => {
      if (Number.isFinite(open)) metrics.openDescriptors.set(open);
      metrics.listenPaused.set(paused || listeners.reopenFailing() ? 1 : 0);
    },
    changed: (paused, open) => {
      const fields = { openDescriptors: open, limit: budget.limit };
      if (paused)
        transitions.warn(
          'listen_paused',
          fields,
          'websocket listeners paused: open descriptors near the open-files limit',
        );
      else
        transitions.info(
          'listen_resumed',
          fields,
          'websocket listeners reopened: open descriptors back below the low-water mark',
        );
    },
  });
  guard.start(GUARD_INTERVAL_MS, NEAR_INTERVAL_MS);
  logger.info(
    {
      openFilesLimit: budget.limit,
      maxConnections,
      pauseAt: budget.pauseAt,
      watchAt: budget.watchAt,
      resumeAt: budget.resumeAt,
      reserve: budget.reserve,
      listenSockets: budget.listeners,
      acceptBurst: budget.acceptBurst,
    },
    'accept guard on',
  );
  return guard;
}
