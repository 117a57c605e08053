import { type ChildProcess, execFile, spawn } from 'node:child_process';
import { once } from 'node:events';
import {
  chmodSync,
  cpSync,
  existsSync,
  mkdirSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  rmSync,
} from 'node:fs';
import { join } from 'node:path';
import { promisify } from 'node:util';
import type { RuntimeImage } from './dockerfile-image.js';

const run = promisify(execFile);

/** A started container as the smoke checks see it: the port it serves on, its output, its PID 1. */
export interface RunningContainer {
  readonly port: number;
  stdout(): string;
  stderr(): string;
  /** SIGTERM to PID 1, as the kubelet and `docker stop` send it. */
  terminate(): Promise<void>;
  exited(): Promise<number | null>;
  /** Runs the image's HEALTHCHECK command inside the container; resolves with its exit code. */
  healthcheck(): Promise<number>;
  /** Paths written during the run outside the image's files (expected: none). */
  written(): Promise<string[]>;
  /** Removes whatever the run left (processes, directories, the container). */
  dispose(): Promise<void>;
}

const started = new Set<ChildProcess>();
process.once('exit', () => {
  for (const child of started) child.kill('SIGKILL');
});

/**
 * The runtime stage's file set, built in a temporary directory as its COPY/RUN steps build it:
 * context files from this checkout, the build stage's output from this checkout's `dist/` (built by
 * `pretest`), `npm ci --omit=dev` run for real (from the npm cache, offline).
 */
export async function reproduceImage(image: RuntimeImage, repository: string): Promise<{ root: string }> {
  // Not under /tmp: the sandbox mounts the image's own /tmp volume over it.
  const root = mkdtempSync('/var/tmp/mbg-image-');
  chmodSync(root, 0o755);
  for (const step of image.steps) {
    if (step.kind === 'copy') {
      const source = join(repository, step.source);
      if (!existsSync(source))
        throw new Error(`COPY ${step.source}: missing in the checkout (run npm run build)`);
      cpSync(source, join(root, step.target), { recursive: true });
    } else {
      const cwd = join(root, step.cwd);
      mkdirSync(cwd, { recursive: true });
      await run('npm', [...step.args, '--prefer-offline'], { cwd, timeout: 300_000 });
    }
  }
  return { root };
}

/** Every file under `dir`, relative to it. */
export function listFiles(dir: string): string[] {
  return (readdirSync(dir, { recursive: true, withFileTypes: true }) as import('node:fs').Dirent[])
    .filter((entry) => !entry.isDirectory())
    .map((entry) => join(entry.parentPath, entry.name).slice(dir.length + 1))
    .sort();
}

/**
 * Starts the reproduced image as a pod runs it, without a container engine: its own mount and PID
 * namespaces (`unshare`), the root filesystem and the application directory read-only, a fresh
 * writable directory on each declared VOLUME, the image's ENTRYPOINT + CMD as PID 1 under the
 * image's numeric USER with every capability dropped from the inheritable, ambient and bounding
 * sets and no-new-privs (`setpriv`), and the image's ENV.
 */
export async function startSandbox(
  image: RuntimeImage,
  root: string,
  env: Record<string, string>,
): Promise<RunningContainer & { readonly pid1: number; readonly app: string }> {
  const app = join(root, image.workdir);
  const volumes = image.volumes.map((path, i) => {
    const dir = join(root, `volume-${i}`);
    mkdirSync(dir);
    chmodSync(dir, 0o1777);
    return { path, dir };
  });
  const { uid, gid } = image.user;
  const script = [
    'set -e',
    'app="$1"; shift',
    'mount --bind "$app" "$app"',
    'mount -o remount,bind,ro "$app"',
    ...volumes.map((v) => `mount --bind '${v.dir}' '${v.path}'`),
    'mount -o remount,bind,ro /',
    'cd "$app"',
    `exec setpriv --reuid=${uid} --regid=${gid} --clear-groups --inh-caps=-all --ambient-caps=-all --bounding-set=-all --no-new-privs -- "$@"`,
  ].join('\n');
  const child = spawn(
    'unshare',
    [
      '--mount',
      '--pid',
      '--fork',
      '--mount-proc',
      'sh',
      '-c',
      script,
      'sh',
      app,
      ...image.entrypoint,
      ...image.cmd,
    ],
    { env, stdio: ['ignore', 'pipe', 'pipe'] },
  );
  started.add(child);
  // 'close', not 'exit': the last log lines have been read by then.
  const exit = once(child, 'close').then(([code]) => {
    started.delete(child);
    return code as number | null;
  });
  const output = collect(child);
  const port = await output.listening(exit);
  // unshare --fork waits for its one child, PID 1 of the new namespace: the ENTRYPOINT after the execs.
  const pid1 = Number(
    readFileSync(`/proc/${child.pid}/task/${child.pid}/children`, 'utf8').trim().split(' ')[0],
  );
  return {
    port,
    pid1,
    app,
    stdout: output.stdout,
    stderr: output.stderr,
    terminate: async () => {
      process.kill(pid1, 'SIGTERM');
    },
    exited: () => exit,
    healthcheck: async () => {
      const checker = spawn(
        'setpriv',
        [`--reuid=${uid}`, `--regid=${gid}`, '--clear-groups', '--inh-caps=-all', '--', ...image.healthcheck],
        { cwd: app, env: { ...env, PORT: String(port) }, stdio: 'ignore' },
      );
      const [code] = await once(checker, 'exit');
      return code as number;
    },
    written: async () => volumes.flatMap((v) => listFiles(v.dir).map((file) => join(v.path, file))),
    dispose: async () => {
      if (child.exitCode === null) child.kill('SIGKILL');
      await exit;
      rmSync(root, { recursive: true, force: true });
    },
  };
}

/**
 * Starts a built image with Docker the way the chart runs the pod (read-only root filesystem, a tmpfs
 * on each declared VOLUME, every capability dropped, no-new-privs), for hosted CI where an engine runs.
 */
export async function startDocker(image: RuntimeImage, tag: string): Promise<RunningContainer> {
  const port = image.exposed[0];
  const { stdout: id } = await run('docker', [
    'run',
    '--detach',
    '--read-only',
    ...image.volumes.flatMap((path) => ['--tmpfs', path]),
    '--cap-drop',
    'ALL',
    '--security-opt',
    'no-new-privileges',
    '--publish',
    `127.0.0.1::${port}`,
    tag,
  ]);
  const container = id.trim();
  const logs = spawn('docker', ['logs', '--follow', container], { stdio: ['ignore', 'pipe', 'pipe'] });
  started.add(logs);
  const logsDone = once(logs, 'close').then(() => null);
  const output = collect(logs);
  await output.listening(logsDone);
  const { stdout: mapped } = await run('docker', ['port', container, `${port}/tcp`]);
  const hostPort = Number(/:(\d+)\s*$/m.exec(mapped)?.[1]);
  // The exit code once `docker logs --follow` has delivered the last lines too.
  const waited = Promise.all([run('docker', ['wait', container]), logsDone]).then(([{ stdout }]) =>
    Number(stdout.trim()),
  );
  return {
    port: hostPort,
    stdout: output.stdout,
    stderr: output.stderr,
    terminate: async () => {
      await run('docker', ['kill', '--signal', 'TERM', container]);
    },
    exited: () => waited,
    healthcheck: async () => {
      const checker = spawn('docker', ['exec', container, ...image.healthcheck], { stdio: 'ignore' });
      const [code] = await once(checker, 'exit');
      return code as number;
    },
    // `docker diff` lists every path changed in the container's own layer (tmpfs mounts excluded).
    written: async () =>
      (await run('docker', ['diff', container])).stdout.split('\n').filter((line) => line.length > 0),
    dispose: async () => {
      await run('docker', ['rm', '--force', container]);
      started.delete(logs);
    },
  };
}

function collect(child: ChildProcess) {
  let out = '';
  let err = '';
  child.stderr!.on('data', (chunk) => {
    err += chunk;
  });
  const listeners: ((line: string) => void)[] = [];
  child.stdout!.on('data', (chunk) => {
    out += chunk;
    for (const listener of listeners) listener(out);
  });
  return {
    stdout: () => out,
    stderr: () => err,
    /** Resolves with the port of the gateway's "listening" log line. */
    listening: (ended: Promise<unknown>) =>
      new Promise<number>((resolve, reject) => {
        listeners.push((text) => {
          const line = text.split('\n').find((l) => l.includes('"msg":"listening"'));
          if (line) resolve((JSON.parse(line) as { port: number }).port);
        });
        void ended.then(() => reject(new Error(`the container exited before listening:\n${out}\n${err}`)));
      }),
  };
}
