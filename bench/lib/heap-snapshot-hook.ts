/**
 * A benchmark-only preload (`node --import dist/bench/lib/heap-snapshot-hook.js dist/src/main.js`;
 * `npm run soak -- --heap-snapshots` passes it): on SIGURG it writes a heap
 * snapshot of the main thread and of every live worker thread, into the process's working directory,
 * as heap-<pid>-<n>-main.heapsnapshot and heap-<pid>-<n>-thread<threadId>.heapsnapshot, and says so
 * on stderr. SIGURG because its default action is to do nothing (a gateway without this module
 * ignores it), close-with-grace does not listen for it, worker-fault-hook uses SIGWINCH, and SIGUSR1
 * opens Node's inspector. Taking a snapshot runs a full collection first (V8 does), so what it holds
 * is live; the explicit gc() on the main thread before it is belt and braces. --expose-gc cannot be
 * given on the command line: the pool passes the process's execArgv to its threads and Worker
 * refuses that flag, so the flag is set here and gc() taken from a fresh context.
 */
import { createWriteStream } from 'node:fs';
import { join } from 'node:path';
import process from 'node:process';
import { pipeline } from 'node:stream/promises';
import { setFlagsFromString, writeHeapSnapshot } from 'node:v8';
import { runInNewContext } from 'node:vm';
import { isMainThread, type Worker } from 'node:worker_threads';

/** Live worker threads of the process, by threadId, until they exit. */
const workers = new Map<number, Worker>();
let round = 0;
let gc: () => void = () => {};

async function snapshotAll(): Promise<void> {
  round += 1;
  const prefix = join(process.cwd(), `heap-${process.pid}-${round}`);
  gc();
  const main = writeHeapSnapshot(`${prefix}-main.heapsnapshot`);
  process.stderr.write(`heap-snapshot-hook: ${main}\n`);
  for (const [threadId, worker] of workers) {
    const file = `${prefix}-thread${threadId}.heapsnapshot`;
    await pipeline(await worker.getHeapSnapshot(), createWriteStream(file));
    process.stderr.write(`heap-snapshot-hook: ${file}\n`);
  }
}

// The pool passes the process's execArgv to its threads, so this module loads in them too: there
// is nothing to do there (signals reach the main thread only).
if (isMainThread) {
  setFlagsFromString('--expose-gc');
  gc = runInNewContext('gc') as () => void;
  process.on('worker', (worker: Worker) => {
    const { threadId } = worker;
    workers.set(threadId, worker);
    worker.once('exit', () => workers.delete(threadId));
  });
  process.on('SIGURG', () => {
    snapshotAll().catch((error: unknown) => {
      process.stderr.write(`heap-snapshot-hook: ${String(error)}\n`);
    });
  });
}
