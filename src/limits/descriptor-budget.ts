/**
 * How the process's open-files limit (RLIMIT_NOFILE) is shared out. uSockets busy-loops when
 * accept() fails with EMFILE, so the accept guard stops accepting at `pauseAt` open descriptors and
 * resumes below `resumeAt`; WebSocket connections are capped below `resumeAt` so that the clients the
 * gateway admits can never hold the listeners paused by themselves.
 */
export interface DescriptorBudget {
  /** The soft RLIMIT_NOFILE the process runs with. */
  readonly limit: number;
  /** Descriptors kept free at the pause point: the admin listener and its clients, Redis, logs. */
  readonly reserve: number;
  /** Open descriptors at which every uWS listen socket is closed. */
  readonly pauseAt: number;
  /** Open descriptors below which the listen sockets are reopened. */
  readonly resumeAt: number;
  /** Descriptors the process holds with no client at all: Node itself and each worker thread's loop. */
  readonly base: number;
  /** The most WebSocket connections that fit: `resumeAt - base`. */
  readonly maxConnections: number;
}

const MIN_RESERVE = 64;
const RESERVE_FRACTION = 0.02;
/** Node's own descriptors, with room to spare. */
const BASE_DESCRIPTORS = 32;
/** A worker thread's event loop, uWS loop and listen socket, with room to spare. */
const DESCRIPTORS_PER_WORKER = 8;

export function descriptorBudget(limit: number, workerThreads: number): DescriptorBudget {
  const reserve = Math.max(MIN_RESERVE, Math.ceil(limit * RESERVE_FRACTION));
  const base = BASE_DESCRIPTORS + DESCRIPTORS_PER_WORKER * workerThreads;
  const resumeAt = limit - 2 * reserve;
  return {
    limit,
    reserve,
    pauseAt: limit - reserve,
    resumeAt,
    base,
    maxConnections: resumeAt - base,
  };
}
