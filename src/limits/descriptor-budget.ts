/**
 * How the process's open-files limit (RLIMIT_NOFILE) is shared out. uSockets busy-loops when
 * accept() fails with EMFILE, so the accept guard stops accepting at `pauseAt` open descriptors and
 * resumes below `resumeAt`; WebSocket connections are capped below `resumeAt` so that the clients the
 * gateway admits can never hold the listeners paused by themselves.
 *
 * The guard reads the count on a timer, and no JavaScript runs while uSockets accepts (it accepts
 * in a loop until the queue is empty, with no callback for a connection that sends nothing). So the
 * reserve above `pauseAt` must hold everything that can be accepted before the guard's next reading
 * takes effect: one full accept queue per listen socket (each worker thread has its own with
 * SO_REUSEPORT), what arrives meanwhile (the guard reads every millisecond from `watchAt` on), and
 * the admin listener's connections, Redis reconnects and logs besides.
 */
export interface DescriptorBudget {
  /** The soft RLIMIT_NOFILE the process runs with. */
  readonly limit: number;
  /** uWS listen sockets: one per worker thread, or the main thread's one. */
  readonly listeners: number;
  /** Connections one accept loop can take at once: a full accept queue, `min(512, somaxconn) + 1`. */
  readonly acceptBurst: number;
  /** Descriptors kept free at the pause point: `listeners × acceptBurst` + OTHER_DESCRIPTORS. */
  readonly reserve: number;
  /** Open descriptors at which every uWS listen socket is closed. */
  readonly pauseAt: number;
  /** From here up to `pauseAt` the guard reads the count far more often: `pauseAt − 4 × reserve`. */
  readonly watchAt: number;
  /** Open descriptors below which the listen sockets are reopened: `pauseAt` − max(64, 2 % of the limit). */
  readonly resumeAt: number;
  /** Descriptors the process holds with no client at all: Node itself and each worker thread's loop. */
  readonly base: number;
  /** The most WebSocket connections that fit: `resumeAt - base`. */
  readonly maxConnections: number;
}

/** The backlog uSockets passes to listen() (bsd.c); the kernel caps it at net.core.somaxconn. */
export const USOCKETS_BACKLOG = 512;
/**
 * What else can open descriptors between two readings: the admin listener (its socket and at most
 * 32 connections, one more accepted and closed over that), Redis connections, logs, DNS.
 */
const OTHER_DESCRIPTORS = 64;
/**
 * How far below the pause point the guard starts reading every millisecond, in reserves: a flood
 * climbed more than one reserve within one 20 ms interval here.
 */
const WATCH_RESERVES = 4;
const MIN_HYSTERESIS = 64;
const HYSTERESIS_FRACTION = 0.02;
/** Node's own descriptors, with room to spare. */
const BASE_DESCRIPTORS = 32;
/** A worker thread's event loop, uWS loop and listen socket, with room to spare. */
const DESCRIPTORS_PER_WORKER = 8;

/**
 * `somaxconn`: the kernel's net.core.somaxconn if known. Linux queues up to backlog + 1
 * connections on a listen socket before it drops SYNs.
 */
export function descriptorBudget(limit: number, workerThreads: number, somaxconn?: number): DescriptorBudget {
  const listeners = Math.max(1, workerThreads);
  const acceptBurst = Math.min(USOCKETS_BACKLOG, somaxconn ?? USOCKETS_BACKLOG) + 1;
  const reserve = listeners * acceptBurst + OTHER_DESCRIPTORS;
  const base = BASE_DESCRIPTORS + DESCRIPTORS_PER_WORKER * workerThreads;
  const pauseAt = limit - reserve;
  const resumeAt = pauseAt - Math.max(MIN_HYSTERESIS, Math.ceil(limit * HYSTERESIS_FRACTION));
  return {
    limit,
    listeners,
    acceptBurst,
    reserve,
    pauseAt,
    watchAt: pauseAt - WATCH_RESERVES * reserve,
    resumeAt,
    base,
    maxConnections: resumeAt - base,
  };
}
