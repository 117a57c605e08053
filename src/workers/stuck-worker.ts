import { once } from 'node:events';
import { Session } from 'node:inspector/promises';
import { setTimeout as delay } from 'node:timers/promises';
import type { Worker } from 'node:worker_threads';
import { CLOSE_STUCK_APP } from './protocol.js';

/** How long an unstuck worker gets to end on its own before it is interrupted again. */
const SELF_EXIT_GRACE_MS = 250;

/**
 * Ends a worker thread whose event loop is stuck, without aborting the process.
 *
 * `worker.terminate()` is not an option: a thread that ends with uWS handles open aborts the whole
 * process (Node's uv_loop_close() check), and a stuck loop never reads a message asking it to
 * close. The inspector is the way in: Node hands protocol messages to a worker through a V8
 * interrupt, taken even while its JavaScript spins. So, over an in-process session (no port):
 * 1. `Runtime.evaluate` calls the function the worker registered under CLOSE_STUCK_APP, which
 *    closes its uWS app (its clients are disconnected) and schedules the thread's exit;
 * 2. `Runtime.terminateExecution` ends the stuck callback, so the loop turns again: uWS frees the
 *    closed sockets and the scheduled exit runs.
 * Resolves true once the thread has exited; false if it did not within `timeoutMs` (stuck in
 * native code, where no interrupt is taken): then it must be left alone.
 */
export async function stopStuckWorker(worker: Worker, timeoutMs: number): Promise<boolean> {
  const exited = once(worker, 'exit').then(() => true);
  const deadline = AbortSignal.timeout(timeoutMs);
  const timedOut = once(deadline, 'abort').then(() => false as const);
  const session = new Session();
  session.connect();
  try {
    const workerSession = waitForWorkerSession(session, worker.threadId);
    await session.post('NodeWorker.enable', { waitForDebuggerOnStart: false });
    const sessionId = await Promise.race([workerSession, timedOut]);
    if (sessionId === false) return false;
    const send = (id: number, method: string, params?: object) =>
      session.post('NodeWorker.sendMessageToWorker', {
        sessionId,
        message: JSON.stringify({ id, method, params }),
      });
    const expression = `globalThis[Symbol.for(${JSON.stringify(CLOSE_STUCK_APP)})]()`;
    const closed = waitForReply(session, sessionId, 1);
    await send(1, 'Runtime.evaluate', { expression, returnByValue: true });
    // A worker that was slow rather than stuck may end on its own before its answer arrives.
    const answer = await Promise.race([closed, exited.then(() => 'exited' as const), timedOut]);
    if (answer !== true) return answer === 'exited';
    const selfExited = await Promise.race([exited, delay(SELF_EXIT_GRACE_MS).then(() => false)]);
    if (selfExited) return true;
    await send(2, 'Runtime.terminateExecution');
    return await Promise.race([exited, timedOut]);
  } finally {
    session.disconnect();
  }
}

function waitForWorkerSession(session: Session, threadId: number): Promise<string> {
  // Node titles an unnamed worker "[worker <threadId>]"; the protocol's workerId is its own counter.
  const title = `[worker ${threadId}]`;
  return new Promise((resolve) => {
    session.on('NodeWorker.attachedToWorker', ({ params }) => {
      if (params.workerInfo.title === title) resolve(params.sessionId);
    });
  });
}

function waitForReply(session: Session, sessionId: string, id: number): Promise<boolean> {
  return new Promise((resolve) => {
    session.on('NodeWorker.receivedMessageFromWorker', ({ params }) => {
      if (params.sessionId !== sessionId) return;
      const reply = JSON.parse(params.message) as { id?: number; result?: { result?: { value?: unknown } } };
      if (reply.id === id) resolve(reply.result?.result?.value === true);
    });
  });
}
