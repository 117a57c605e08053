/**
 * A benchmark-only preload (`node --import dist/bench/lib/worker-fault-hook.js dist/src/main.js`):
 * on SIGWINCH it makes the first listening worker thread of the gateway fail as an uncaught
 * exception would, by posting the worker pool's own test-hook message ({ kind: 'fault' }, the one
 * `injectWorkerFault` sends in-process). The built gateway has no way to be told this from outside,
 * and gets none: only a process started with this module loaded can be made to fail this way.
 * GatewayProcess.start passes it with `nodeArgs`; the soak sends the signal. SIGWINCH because its
 * default action is to do nothing (a gateway without this module ignores it) and the gateway's
 * shutdown handler (close-with-grace) does not listen for it, as it does for SIGUSR2 and SIGHUP.
 */
import process from 'node:process';
import { isMainThread, type Worker } from 'node:worker_threads';

/** Worker threads that said they are listening (the pool's), oldest first, until they exit. */
const listening: Worker[] = [];

// The pool passes the process's execArgv to its threads, so this module loads in them too: there
// is nothing to do there (signals reach the main thread only).
if (isMainThread) {
  process.on('worker', (worker: Worker) => {
    worker.on('message', (message: { kind?: unknown }) => {
      if (message?.kind === 'listening') listening.push(worker);
    });
    worker.once('exit', () => {
      const at = listening.indexOf(worker);
      if (at >= 0) listening.splice(at, 1);
    });
  });
  process.on('SIGWINCH', () => {
    const target = listening[0];
    if (target) target.postMessage({ kind: 'fault', fault: 'crash' });
    else process.stderr.write('worker-fault-hook: SIGWINCH but no listening worker thread\n');
  });
}
