import { readdirSync, readFileSync } from 'node:fs';
import { request } from 'node:http';
import { dirname, join, relative, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startTestGateway, type TestGateway } from '../support/gateway.js';
import { TestClient } from '../support/ws-client.js';

let gw: TestGateway;
beforeAll(async () => {
  // Worker threads: whichever thread's app takes the request serves the page.
  gw = await startTestGateway({ WS_WORKER_THREADS: '2' });
});
afterAll(() => gw.stop());

/** A GET on a fresh connection (any worker), with the raw path as given: no client-side normalisation. */
function get(path: string, headers: Record<string, string> = {}) {
  return new Promise<{ status: number; headers: Record<string, unknown>; body: string }>((done, fail) => {
    const req = request(
      {
        host: '127.0.0.1',
        port: gw.gateway.port,
        path,
        agent: false,
        headers: { connection: 'close', ...headers },
      },
      (res) => {
        let body = '';
        res.setEncoding('utf8');
        res.on('data', (chunk) => {
          body += chunk;
        });
        res.on('end', () => done({ status: res.statusCode ?? 0, headers: res.headers, body }));
      },
    );
    req.on('error', fail);
    req.end();
  });
}

describe('the live page over HTTP', () => {
  it('GET / serves the page on every thread, revalidated by ETag; upgrades on / still open a WebSocket', async () => {
    const replies = await Promise.all(Array.from({ length: 8 }, () => get('/')));
    for (const reply of replies) {
      expect(reply.status).toBe(200);
      expect(reply.headers['content-type']).toBe('text/html; charset=utf-8');
      expect(reply.headers['cache-control']).toBe('no-cache');
      expect(reply.body).toContain('<script type="module" src="/assets/page/app.js">');
    }
    const etag = String(replies[0]!.headers.etag);
    expect(etag).toMatch(/^"[\w-]{22}"$/);
    const again = await get('/', { 'if-none-match': etag });
    expect(again.status).toBe(304);
    expect(again.body).toBe('');
    const client = await TestClient.connect(gw.wsUrl);
    client.subscribe(['heartbeat'], ['BTC-USD']);
    await client.nextOfType('heartbeat');
    await client.close();
  });

  it('assets: the browser build and the stylesheet, with content types and a short max-age', async () => {
    const script = await get('/assets/page/app.js');
    expect(script.status).toBe(200);
    expect(script.headers['content-type']).toBe('text/javascript; charset=utf-8');
    expect(script.headers['cache-control']).toBe('public, max-age=60');
    expect(script.body).toContain("from '../client/client.js'");
    const sdk = await get('/assets/client/client.js');
    expect(sdk.status).toBe(200);
    const css = await get('/assets/style.css');
    expect(css.headers['content-type']).toBe('text/css; charset=utf-8');
  });

  it('no path reaches a file outside the allow-list', async () => {
    for (const path of [
      '/assets/../package.json',
      '/assets/%2e%2e/%2e%2e/package.json',
      '/assets/..%2f..%2fpackage.json',
      '/assets/client/client.d.ts',
      '/assets/',
      '/assets//etc/passwd',
      '/index.html',
      '/assets/page/app.ts',
    ]) {
      const reply = await get(path);
      expect(reply.status, path).toBe(404);
      expect(reply.body, path).toBe('{"message":"NotFound"}');
    }
  });
});

describe('the browser build (dist/browser)', () => {
  it('imports only its own relative modules: nothing Node-only, nothing from outside', () => {
    const root = fileURLToPath(new URL('../../dist/browser/', import.meta.url));
    const files = (readdirSync(root, { recursive: true }) as string[]).filter((f) => f.endsWith('.js'));
    expect(files).toContain(join('page', 'app.js'));
    const importPattern =
      /(?:^|\n)\s*(?:import|export)\s[^'"]*?from\s*['"]([^'"]+)['"]|import\(\s*['"]([^'"]+)['"]\s*\)/g;
    for (const file of files) {
      const text = readFileSync(join(root, file), 'utf8');
      for (const match of text.matchAll(importPattern)) {
        const specifier = match[1] ?? match[2]!;
        expect(specifier, `${file} imports ${specifier}`).toMatch(/^\.\.?\//);
        const target = resolve(dirname(join(root, file)), specifier);
        expect(relative(root, target).startsWith('..'), `${file} imports ${specifier}`).toBe(false);
        expect(files, `${file} imports ${specifier}`).toContain(relative(root, target));
      }
    }
  });
});
