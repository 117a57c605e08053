import { readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { fileURLToPath } from 'node:url';
import { satisfies } from 'semver';
import { beforeAll, describe, expect, it } from 'vitest';
import { CONFIG_VARIABLES } from '../../src/config/config.js';
import {
  listFiles,
  type RunningContainer,
  reproduceImage,
  startDocker,
  startSandbox,
} from '../support/container-run.js';
import { contextSources, readRuntimeImage } from '../support/dockerfile-image.js';
import { TestClient } from '../support/ws-client.js';

/**
 * The container image, proven without a container engine: the runtime stage of the Dockerfile is
 * reproduced from its own instructions and started as the pod runs it (see container-run.ts). With
 * CONTAINER_IMAGE set (hosted CI, .github/workflows/container.yml) the same checks run against that
 * image started by Docker instead.
 */
const repository = fileURLToPath(new URL('../..', import.meta.url));
const image = readRuntimeImage(`${repository}/Dockerfile`);
const pkg = JSON.parse(readFileSync(`${repository}/package.json`, 'utf8')) as {
  version: string;
  engines: { node: string };
  scripts: Record<string, string>;
  dependencies: Record<string, string>;
  devDependencies: Record<string, string>;
};
const dockerImage = process.env.CONTAINER_IMAGE;
// A CommonJS module whose typings declare an ES default export that does not exist at run time.
const dockerignore = createRequire(import.meta.url)(
  '@balena/dockerignore',
) as typeof import('@balena/dockerignore').default;
/** Variables with a fixed default port: a test must never bind a fixed port. */
const FREE_PORTS = Object.keys(CONFIG_VARIABLES).filter((name) => /(^|_)PORT$/.test(name));

describe('the Dockerfile', () => {
  it('builds on Debian bookworm-slim Node within package.json engines, never Alpine', () => {
    expect(image.bases.length).toBeGreaterThanOrEqual(2);
    for (const base of image.bases) {
      const match = /^node:(\d+\.\d+\.\d+)-bookworm-slim$/.exec(base);
      expect(match, base).not.toBeNull();
      expect(satisfies(match![1]!, pkg.engines.node), `${base} vs engines ${pkg.engines.node}`).toBe(true);
    }
  });

  it('runs production dependencies only, as a fixed non-root account, under tini, in exec form', () => {
    expect(image.env.get('NODE_ENV')).toBe('production');
    const installs = image.steps.filter((s) => s.kind === 'npm').map((s) => s.args.join(' '));
    expect(installs).toEqual([expect.stringMatching(/^ci --omit=dev\b/)]);
    expect(image.user.uid).toBeGreaterThan(0);
    expect(image.accounts).toContainEqual(
      expect.objectContaining({ uid: image.user.uid, gid: image.user.gid }),
    );
    expect(image.aptPackages).toContain('tini');
    expect(image.entrypoint).toEqual(['/usr/bin/tini', '--']);
    // The command is the README's `npm start`, without npm (never npm or a shell as PID 1).
    expect(image.cmd.join(' ')).toBe(pkg.scripts.start);
    expect(image.healthcheck[0]).toBe('node');
  });

  it('exposes the default ports and carries OCI labels', () => {
    for (const name of FREE_PORTS)
      expect(image.exposed).toContain(
        Number(CONFIG_VARIABLES[name as keyof typeof CONFIG_VARIABLES].defaultValue),
      );
    expect(image.exposed).toContain(9091);
    expect(image.labels.get('org.opencontainers.image.title')).toBe('matchbook-gateway');
    expect(image.labels.get('org.opencontainers.image.version')).toBe(pkg.version);
    for (const key of ['description', 'licenses', 'base.name'])
      expect(image.labels.get(`org.opencontainers.image.${key}`), key).toBeTruthy();
  });

  it('.dockerignore sends the build what its COPY steps name and nothing else', () => {
    const ignore = dockerignore().add(readFileSync(`${repository}/.dockerignore`, 'utf8').split('\n'));
    const sent = (path: string) => !ignore.ignores(path);
    const sources = contextSources(`${repository}/Dockerfile`);
    expect(sources.length).toBeGreaterThan(0);
    for (const source of sources) expect(sent(source), source).toBe(true);
    for (const path of ['src/main.ts', 'src/workers/worker-thread.ts', 'bench/compare.ts'])
      expect(sent(path), path).toBe(true);
    for (const path of [
      'node_modules/ws/index.js',
      'dist/src/main.js',
      'test/e2e/lifecycle.test.ts',
      '.git/HEAD',
      'bench/out/run.json',
      'README.md',
      'Dockerfile',
    ])
      expect(sent(path), path).toBe(false);
  });
});

describe.runIf(dockerImage === undefined)('the runtime stage reproduced', () => {
  let root: string;
  let app: string;
  beforeAll(async () => {
    root = (await reproduceImage(image, repository)).root;
    app = `${root}${image.workdir}`;
  }, 300_000);

  it('holds nothing the runtime does not need', () => {
    const files = listFiles(app);
    const top = [...new Set(files.map((file) => file.split('/')[0]))].sort();
    expect(top).toEqual(['dist', 'node_modules', 'package-lock.json', 'package.json', 'src']);
    expect(
      files.filter(
        (f) => f.startsWith('dist/') && !f.startsWith('dist/src/') && !f.startsWith('dist/browser/'),
      ),
    ).toEqual([]);
    // The live page's HTML and CSS are the only sources: nothing else under src/.
    expect(files.filter((f) => f.startsWith('src/')).sort()).toEqual([
      'src/page/index.html',
      'src/page/style.css',
    ]);
    expect(files.filter((f) => f.startsWith('dist/') && f.endsWith('.ts'))).toEqual([]);
    const modules = new Set(files.filter((f) => f.startsWith('node_modules/')).map((f) => f.split('/')[1]));
    for (const name of Object.keys(pkg.dependencies)) expect(modules, name).toContain(name);
    for (const name of Object.keys(pkg.devDependencies).filter((n) => !(n in pkg.dependencies)))
      expect(modules.has(name.split('/')[0]!), `dev dependency ${name}`).toBe(false);
    expect(files.filter((f) => f.includes('.npm/') || f.includes('_cacache'))).toEqual([]);
  });

  it('serves read-only as the non-root UID under tini as PID 1, and drains on SIGTERM', async () => {
    const before = listFiles(app);
    const home = image.accounts.find((a) => a.uid === image.user.uid)!.home;
    const env: Record<string, string> = {
      PATH: process.env.PATH ?? '/usr/bin:/bin',
      HOME: home,
      ...Object.fromEntries(image.env),
      HOST: '127.0.0.1',
      ...Object.fromEntries(FREE_PORTS.map((name) => [name, '0'])),
    };
    const container = await startSandbox(image, root, env);
    try {
      expect(readFileSync(`/proc/${container.pid1}/comm`, 'utf8').trim()).toBe('tini');
      const node = Number(
        readFileSync(`/proc/${container.pid1}/task/${container.pid1}/children`, 'utf8').trim().split(' ')[0],
      );
      const status = readFileSync(`/proc/${node}/status`, 'utf8');
      const field = (name: string) =>
        new RegExp(`^${name}:[ \\t]*(.*)$`, 'm')
          .exec(status)?.[1]
          ?.split(/\s+/)
          .filter((w) => w !== '');
      expect(field('Uid')).toEqual(Array(4).fill(String(image.user.uid)));
      expect(field('Gid')).toEqual(Array(4).fill(String(image.user.gid)));
      expect(field('Groups')).toEqual([]);
      for (const caps of ['CapInh', 'CapPrm', 'CapEff', 'CapBnd', 'CapAmb'])
        expect(field(caps), caps).toEqual(['0000000000000000']);
      expect(field('NoNewPrivs')).toEqual(['1']);
      // Its root filesystem and application directory are read-only mounts.
      const mounts = readFileSync(`/proc/${node}/mountinfo`, 'utf8').split('\n');
      for (const path of ['/', container.app])
        expect(mounts.find((m) => m.split(' ')[4] === path)?.split(' ')[5], path).toMatch(/^ro\b/);

      await smoke(container);
      expect(container.stderr()).not.toMatch(/tini|WARN|Error/);
      expect(listFiles(app)).toEqual(before);
    } finally {
      await container.dispose();
    }
  }, 120_000);
});

describe.runIf(dockerImage !== undefined)('the image under Docker', () => {
  it('serves read-only, drains on SIGTERM, exits 0 and writes nothing', async () => {
    const container = await startDocker(image, dockerImage!);
    try {
      await smoke(container);
    } finally {
      await container.dispose();
    }
  }, 120_000);
});

/** The checks shared by both ways of running the image. */
async function smoke(container: RunningContainer): Promise<void> {
  const base = `http://127.0.0.1:${container.port}`;
  expect(await container.healthcheck()).toBe(0);
  expect((await fetch(`${base}/healthz`)).status).toBe(200);
  expect((await readiness(base)).status).toBe(200);
  expect(container.stdout()).toMatch(/"workerThreadsFrom":"[^"]+"/);

  const clients = await Promise.all(
    [1, 2, 3].map(() => TestClient.connect(`ws://127.0.0.1:${container.port}/`)),
  );
  for (const client of clients) client.subscribe(['level2', 'heartbeat'], ['BTC-USD']);
  for (const snapshot of await Promise.all(clients.map((c) => c.nextOfType('snapshot', 10_000))))
    expect(snapshot).toMatchObject({
      product_id: 'BTC-USD',
      bids: expect.any(Array),
      asks: expect.any(Array),
    });

  await container.terminate();
  expect((await Promise.all(clients.map((c) => c.closed))).map((c) => c.code)).toEqual([1001, 1001, 1001]);
  expect(await container.exited()).toBe(0);
  expect(container.stdout()).toContain('"msg":"shutdown complete"');
  expect(await container.written()).toEqual([]);
}

/**
 * /readyz turns 200 once every product has a book; the gateway emits no event for it a client can
 * await, so it is asked again every 20 ms (as waitForMetric does) until a bound.
 */
async function readiness(base: string): Promise<Response> {
  const deadline = performance.now() + 15_000;
  for (;;) {
    const response = await fetch(`${base}/readyz`);
    if (response.status === 200 || performance.now() > deadline) return response;
    await response.body?.cancel();
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
}
